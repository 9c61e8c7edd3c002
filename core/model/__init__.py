"""The OMG-Avatar network (Ren, Liu, Hoi): one photo to an animatable multi-LOD
head-and-shoulder 3D Gaussian avatar.

Reconstruction, once per photo (:meth:`OmgAvatarNet.encode` -> :class:`SourceEncoding`)::

    photo -> DINOv2 (frozen, backbone.py) -> 4 token grids -> DPT (dpt.py) -> local plane
                                          -> identity tokens -> global branch (global_branch.py):
                                             per-vertex queries x cross-attention -> F_global
    F_global -> offset MLP -> FLAME + offsets, posed (posing.py)           eq. 1
    for every level k = 0..K:                                              eq. 3-8
        F_global_k = subdivide(Phi_{k-1}(F_global_{k-1}))  (coarse_to_fine.py)
        vertices_k = subdivide(vertices_{k-1})
        F_local_k  = local plane sampled at the projected vertices  (hpfs.py)
        F_h        = F_global_k + F_local_k * visible  (oaff.py, depth buffer)
        Gaussian heads -> colour feature, opacity, scale, rotation  (heads.py)
    local plane -> conv net -> shoulder cells in the shoulder mask  (shoulders.py) eq. 9-11

Animation, per frame (:meth:`OmgAvatarNet.gaussians`): FLAME re-posed with the source's
shape and offsets and the frame's expression and pose, subdivided to the level of detail,
the encoding's attributes attached, the shoulders appended. The backbone does not run.

Rendering splats the ``splat_channels`` features (the first 3 a coarse RGB) with
:func:`core.render.render`; :meth:`OmgAvatarNet.refine` (refiner.py, a UNet) turns the
feature image into the final RGB image. Checkpoints (checkpoint.py) hold the learned
weights only: neither DINOv2's nor FLAME's.
"""

from core.model.network import OmgAvatarNet, SourceEncoding, parameter_counts
from core.model.posing import FlameCoefficients

__all__ = ["FlameCoefficients", "OmgAvatarNet", "SourceEncoding", "parameter_counts"]
