"""The OMG-Avatar network (Ren, Liu, Hoi) as its authors released it: one photo to an animatable
multi-LOD head-and-shoulder 3D Gaussian avatar. :class:`~core.model.release_network.ReleaseNetwork`
composes single-purpose modules under the release's names, so that its checkpoint loads by key.

Reconstruction, once per photo (``encode`` then ``reconstruct`` per level)::

    photo (518, background black) -> DINOv2 ViT-B/14 + DPT head (encoder.py) -> 296 x 296 plane
                                                                           -> 1,369 tokens
    learned head queries x tokens -> query decoder (query_decoder.py) -> per-vertex features
    view-direction code (direction_code.py) of the source camera's plane direction
    offsets (offset_generator.py) -> FLAME with template offsets (core.flame.release)
    for every level k = 0..K: midpoint subdivision of vertices and features (release_geometry.py)
        plane sampled at the projected vertices (projection.py), occlusion by the depth buffer
        (occlusion.py), fusion, head Gaussian generator k (gaussian_generators.py)
    plane -> shoulder generator on the plane behind the head (shoulder_plane.py), masked
    -> the Gaussians, shoulders first (release_gaussians.py)

Animation, per frame: FLAME re-posed with the source's shape and offsets and the frame's
expression, jaw and eyes, subdivided to the level; nothing else runs. The splatted 32-channel
features (the first 3 a coarse RGB) go through the StyleUNet refiner (style_refiner.py,
style_decoder.py). Checkpoints: the release's ``omg_ckpt.pt`` (release_checkpoint.py) or ours
(network_checkpoint.py), loaded onto a FLAME bundle by release_loading.py.
"""
