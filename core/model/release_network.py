"""The released OMG-Avatar network (its ``OMGAvatar``), composed from our single-purpose modules,
with the release's top-level names so that its state dict has the release's keys (all but the
training-only ``percep_loss.*``) and its checkpoint loads by name.

Two paths, kept apart:

* once per photo, :meth:`ReleaseNetwork.encode` (level-independent: DINOv2 features, the
  view-direction code, the query decoder's per-vertex features, the learned FLAME offsets, the
  shoulder generator's cells) then :meth:`ReleaseNetwork.reconstruct` at a level (geometry,
  occlusion-aware fusion, head and shoulder Gaussians): together the release's ``recon_avatar``;
* per frame, :meth:`ReleaseNetwork.animate`: only the target FLAME mesh and its subdivision are
  recomputed and replace the head Gaussians' positions; everything else stays.

:meth:`ReleaseNetwork.refine` is the neural refiner (``upsampler``) on a splatted feature image.

Shapes: B images, V_l vertices at level l (V_0 = FLAME's), S x S the feature plane (296), N
Gaussians.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from core.config import Config
from core.errors import ConfigError, first_line
from core.flame.release_state import ReleaseFlameModel
from core.geometry.release_subdivision import blocked_midpoint_faces
from core.model.direction_code import direction_code
from core.model.encoder import PATCH_SIZE, PLANE_PER_PATCH, DinoEncoder, EncodedImage
from core.model.gaussian_generators import (
    COLOR_CHANNELS,
    GaussianAttributes,
    HeadGaussianGenerator,
    ShoulderCells,
    ShoulderGaussianGenerator,
)
from core.model.occlusion import plane_mask
from core.model.offset_generator import OffsetGenerator
from core.model.projection import sample_plane
from core.model.query_decoder import QueryDecoder
from core.model.release_gaussians import ReleaseGaussians, shoulder_gaussians
from core.model.release_geometry import FlamePose, ReleaseGeometry, SourceView
from core.model.shoulder_plane import PLANE_SIZE, shoulder_plane
from core.model.style_decoder import NoiseMode
from core.model.style_refiner import StyleRefiner


@dataclass(frozen=True)
class ReleaseConfig:
    """Sizes of the network; the defaults are the paper's (the release's ``meta_cfg``).

    Attributes:
        dim: per-vertex and plane feature channels (``MODEL.DIM``).
        transformer_layers: query-decoder layers (``MODEL.N_TRANSFORMER_LAYERS``).
        subdivision: levels above 0, one head generator each plus level 0's (``MODEL.SUBDIVISION``).
        image_size: DINOv2's input side, a multiple of 14; the plane's side is 8/14 of it.
        vit_dim, vit_depth, vit_heads: the ViT (ViT-B/14; smaller only for tests).
        refiner_size: the refiner's image side.
    """

    dim: int = 256
    transformer_layers: int = 2
    subdivision: int = 2
    image_size: int = 518
    vit_dim: int = 768
    vit_depth: int = 12
    vit_heads: int = 12
    refiner_size: int = 512

    @property
    def plane_size(self) -> int:
        """The feature plane's side (296 at 518, ``DATASET.POINT_PLANE_SIZE``)."""
        return PLANE_PER_PATCH * self.image_size // PATCH_SIZE


@functools.lru_cache(maxsize=4)
def vit_sizes(architecture: str) -> tuple[int, int, int]:
    """timm's width, depth and heads of the DINOv2 ViT ``architecture`` (built on the meta device:
    no memory); ConfigError for another model."""
    try:
        with torch.device("meta"):
            vit = timm.create_model(architecture, pretrained=False, num_classes=0)
    except RuntimeError as exc:  # timm's "Unknown model"
        raise ConfigError(f"model.backbone: {first_line(exc)}") from None
    if not isinstance(vit, VisionTransformer) or tuple(vit.patch_embed.patch_size) != (PATCH_SIZE, PATCH_SIZE):
        raise ConfigError(f"model.backbone: {architecture} is not a DINOv2 ViT with {PATCH_SIZE} px patches")
    return vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads


def release_config(config: Config) -> ReleaseConfig:
    """The network sizes of a project ``config``: ``model.feature_dim`` -> ``dim``,
    ``model.global_layers`` -> ``transformer_layers``, ``lod.levels`` -> ``subdivision``,
    ``model.backbone_image_size`` -> ``image_size``, ``model.render_size`` -> ``refiner_size``,
    and the ViT's width, depth and heads timm's for ``model.backbone`` (the paper's config gives
    ``ReleaseConfig()``)."""
    model = config.model
    vit_dim, vit_depth, vit_heads = vit_sizes(model.backbone)
    return ReleaseConfig(
        dim=model.feature_dim,
        transformer_layers=model.global_layers,
        subdivision=config.lod.levels,
        image_size=model.backbone_image_size,
        vit_dim=vit_dim,
        vit_depth=vit_depth,
        vit_heads=vit_heads,
        refiner_size=model.render_size,
    )


@dataclass(frozen=True)
class Source:
    """One batch of source photos and what the tracker found in them.

    Attributes:
        image: [B, 3, image_size, image_size] in [0, 1], background black.
        transform: [B, 3, 4] source camera ``[R | T]`` (``core.geometry.release_camera``).
        pose: the source's FLAME coefficients.
    """

    image: Tensor
    transform: Tensor
    pose: FlamePose


@dataclass(frozen=True)
class EncodedSource:
    """The level-independent part of a reconstruction (the release computes it at every level).

    Attributes:
        source: the input.
        encoded: DINOv2 tokens and the feature plane [B, C, S, S].
        code: [B, 27] view-direction code of the shoulder plane's direction.
        plane_points: [B, S * S, 3]; plane_direction: [B, 3] (``core.model.shoulder_plane``).
        vertex_features: [B, V_0, C] the query decoder's output.
        offsets: [B, V_0, 3] learned FLAME template offsets (metres).
        shoulder_cells: the shoulder generator's output, before masking.
    """

    source: Source
    encoded: EncodedImage
    code: Tensor
    plane_points: Tensor
    plane_direction: Tensor
    vertex_features: Tensor
    offsets: Tensor
    shoulder_cells: ShoulderCells


@dataclass(frozen=True)
class Reconstruction:
    """An avatar at one level, and the stages that made it.

    Attributes:
        level: the subdivision level.
        encoding: the level-independent part.
        view: the source mesh at this level, its projection, depth map, occlusion, plane mask.
        subdivided_features: [B, V_l, C] vertex features subdivided; sampled: [B, V_l, C] the
            plane sampled at the projected vertices; combined: [B, V_l, C] their fusion.
        head: [B, V_l] head Gaussians' attributes, generator splits concatenated.
        plane_mask: [B, S, S, 1] the shoulder plane's background mask (``core.model.occlusion``).
        shoulder_valid: [B, S * S] bool, the shoulder cells kept.
        gaussians: every Gaussian, shoulders first, then the head's (positions on the target mesh).
    """

    level: int
    encoding: EncodedSource
    view: SourceView
    subdivided_features: Tensor
    sampled: Tensor
    combined: Tensor
    head: GaussianAttributes
    plane_mask: Tensor
    shoulder_valid: Tensor
    gaussians: ReleaseGaussians

    @property
    def head_count(self) -> int:
        return self.combined.shape[1]


class SubdividedFaces(nn.Module):
    """The release's ``subdivider`` state: ``_subdivided_faces`` [4F, 3] int64, the template's
    level-1 faces in the release's order, which it saves with its weights (the geometry computes
    its levels from the template itself)."""

    def __init__(self, faces: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("_subdivided_faces", torch.as_tensor(faces, dtype=torch.int64))


class ReleaseNetwork(nn.Module):
    """The released network (see the module docstring).

    Args:
        config: sizes.
        flame: FLAME from the release's bundle (``FLAME_with_eye.pt``).
        template_faces: [F, 3] the topology (``head_template_mesh.obj``'s faces).
        neck_vertices: the ``neck`` and ``boundary`` masks' vertices (``FLAME_masks.pkl``).
    """

    def __init__(
        self, config: ReleaseConfig, flame: ReleaseFlameModel, template_faces: np.ndarray, neck_vertices: np.ndarray
    ) -> None:
        super().__init__()
        c = config
        self.config = config
        self.head_base = nn.Parameter(torch.randn(flame.num_vertices, c.dim))
        for name, module in self.learned_modules(config).items():
            self.add_module(name, module)
        self.flame_model = flame
        self.geometry = ReleaseGeometry(flame, template_faces, neck_vertices, c.subdivision)
        self.subdivider = SubdividedFaces(blocked_midpoint_faces(template_faces, flame.num_vertices))

    @staticmethod
    def learned_modules(config: ReleaseConfig) -> dict[str, nn.Module]:
        """The modules with learned weights besides ``head_base``, by the release's names (also
        what a checkpoint must hold, :func:`core.model.release_checkpoint.expected_release_shapes`)."""
        c = config
        return {
            "base_dino_model": DinoEncoder(c.image_size, c.dim, c.vit_dim, c.vit_depth, c.vit_heads),
            "transformer": QueryDecoder(c.dim, c.vit_dim, c.transformer_layers),
            "gs_head_generators": nn.ModuleList(HeadGaussianGenerator(c.dim) for _ in range(c.subdivision + 1)),
            "gs_generator_offset": OffsetGenerator(c.dim),
            "gs_shoulder_generator": ShoulderGaussianGenerator(c.dim),
            "upsampler": StyleRefiner(COLOR_CHANNELS, c.refiner_size),
        }

    def splits(self, level: int) -> list[tuple[int, int]]:
        """Vertex ranges of generators 0..level: level k's new vertices [V_{k-1}, V_k)."""
        counts = [0, *self.geometry.subdivision.num_vertices[: level + 1]]
        return list(zip(counts[:-1], counts[1:]))

    # ------------------------------------------------------------------ once per photo
    def encode(self, source: Source) -> EncodedSource:
        """The level-independent stages of a reconstruction."""
        encoded = self.base_dino_model(source.image)
        plane_points, plane_direction = shoulder_plane(source.transform, self.config.plane_size)
        code = direction_code(plane_direction)
        features = self.transformer(self.head_base, encoded.tokens)
        return EncodedSource(
            source=source,
            encoded=encoded,
            code=code,
            plane_points=plane_points,
            plane_direction=plane_direction,
            vertex_features=features,
            offsets=self.gs_generator_offset(features, code),
            shoulder_cells=self.gs_shoulder_generator(encoded.plane, code),
        )

    def reconstruct(self, encoding: EncodedSource, level: int, target: FlamePose | None = None) -> Reconstruction:
        """The avatar at ``level`` (0..subdivision), its head posed by ``target`` (the source's
        own coefficients when None)."""
        source = encoding.source
        source_points = self.geometry.mesh(source.pose)
        view = self.geometry.source_view(source_points, source.transform, level)
        subdivided = self.geometry.subdivide(encoding.vertex_features, level)
        sampled = sample_plane(encoding.encoded.plane, view.n_coords)
        combined = subdivided + sampled * (1 - view.occluded.to(sampled.dtype))[..., None]
        head = GaussianAttributes.cat(
            [
                generator(combined[:, start:end], encoding.code)
                for generator, (start, end) in zip(self.gs_head_generators, self.splits(level))
            ]
        )
        # The geometry's mask is at the release's 296; a smaller (test) plane needs its own.
        mask = (
            view.plane_mask
            if self.config.plane_size == PLANE_SIZE
            else plane_mask(view.depth_map, self.config.plane_size)
        )
        shoulders, valid = shoulder_gaussians(
            encoding.shoulder_cells, encoding.plane_points, encoding.plane_direction, mask
        )
        head_xyz = self.head_points(encoding, source.pose if target is None else target, level)
        gaussians = ReleaseGaussians.cat([shoulders, ReleaseGaussians.at(head_xyz, head)])
        return Reconstruction(level, encoding, view, subdivided, sampled, combined, head, mask, valid, gaussians)

    # ------------------------------------------------------------------ per frame
    def animate(self, avatar: Reconstruction, target: FlamePose) -> ReleaseGaussians:
        """The avatar's Gaussians with the head on the ``target`` expression, jaw and eyes
        (the shape stays the source's, as in the release); the shoulders do not move."""
        return avatar.gaussians.with_last_xyz(self.head_points(avatar.encoding, target, avatar.level))

    def head_points(self, encoding: EncodedSource, target: FlamePose, level: int) -> Tensor:
        """[B, V_level, 3] the target mesh: FLAME(source shape, target expression, pose, eyes)
        with the learned offsets, subdivided."""
        pose = FlamePose(encoding.source.pose.shape, target.expression, target.pose, target.eyes)
        return self.geometry.subdivide(self.geometry.mesh(pose, encoding.offsets), level)

    def refine(self, images: Tensor, noise: NoiseMode = "fixed", generator: torch.Generator | None = None) -> Tensor:
        """[B, 32, R, R] splatted feature images -> [B, 3, R, R] RGB in [0, 1]."""
        return self.upsampler(images, noise, generator)
