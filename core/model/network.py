"""OMG-Avatar's network: one photo to multi-LOD head-and-shoulder Gaussians.

Two paths (see :mod:`core.model`):

* :meth:`OmgAvatarNet.encode`, once per photo: backbone, local plane (DPT), global branch,
  vertex offsets, then for every level k = 0..K the level's vertices (FLAME with the offsets,
  subdivided), HPFS, OAFF and the Gaussian heads; and the shoulder branch. The result, a
  :class:`SourceEncoding`, holds everything but the head's positions.
* :meth:`OmgAvatarNet.gaussians`, per frame: FLAME re-posed (the source's shape and offsets,
  the frame's expression and pose), subdivided to the level asked for, the cached
  attributes attached, the shoulders appended. No backbone, no feature sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.config import Config
from core.flame.layer import FlameLayer
from core.geometry.camera import Camera
from core.geometry.mesh import mean_edge_lengths
from core.geometry.subdivision import LodHierarchy, build_lod
from core.model.coarse_to_fine import CoarseToFine
from core.model.dpt import DptDecoder
from core.model.global_branch import GlobalBranch, OffsetMlp
from core.model.heads import GaussianAttributes, GaussianHeads
from core.model.hpfs import sample_plane
from core.model.oaff import fuse, visibility
from core.model.posing import FlameCoefficients, HeadPoser
from core.model.refiner import NeuralRefiner
from core.model.shoulders import ShoulderBranch
from core.render.gaussians import Gaussians

if TYPE_CHECKING:
    from core.model.backbone import DinoBackbone


@dataclass(frozen=True)
class SourceEncoding:
    """What :meth:`OmgAvatarNet.encode` computes once per source photo (batch of B).

    Attributes:
        shape: [B, n_shape] the source's FLAME shape.
        offsets: [B, V_0, 3] learned vertex offsets (eq. 1), world units, in FLAME's rest pose.
        levels: per level k = 0..max_lod, the head Gaussians' attributes [B, V_k, ...].
        shoulders: B shoulder Gaussian sets (fixed in the source's world space).
        cameras: the B source cameras.
    """

    shape: Tensor
    offsets: Tensor
    levels: tuple[GaussianAttributes, ...]
    shoulders: tuple[Gaussians, ...]
    cameras: tuple[Camera, ...]

    @property
    def batch_size(self) -> int:
        return self.shape.shape[0]

    @property
    def max_lod(self) -> int:
        """The finest level encoded."""
        return len(self.levels) - 1


class OmgAvatarNet(nn.Module):
    """The network of the paper, sized by ``config.model`` and ``config.lod``.

    Args:
        config: sizes, camera and FLAME scale.
        flame: the FLAME layer (its vertex count sizes the global branch's queries).
        backbone: the frozen DINOv2 backbone (:class:`core.model.backbone.DinoBackbone`).
    """

    local_features: DptDecoder
    global_branch: GlobalBranch
    offset_mlp: OffsetMlp
    coarse_to_fine: CoarseToFine
    heads: GaussianHeads
    shoulders: ShoulderBranch
    refiner: NeuralRefiner

    def __init__(self, config: Config, flame: FlameLayer, backbone: DinoBackbone) -> None:
        super().__init__()
        num_vertices = flame.v_template.shape[0]
        self.config = config
        self.backbone = backbone
        for name, module in learned_modules(config, num_vertices, backbone.embed_dim).items():
            self.add_module(name, module)
        self.poser = HeadPoser(flame, config.flame.scale)
        self.lod: LodHierarchy = build_lod(
            flame.faces.cpu().numpy(), num_vertices, config.lod.levels, config.lod.scheme
        )
        template = flame.v_template.detach().cpu().double().numpy() * config.flame.scale
        for level in range(config.lod.levels + 1):
            spacing = mean_edge_lengths(self.lod.apply(level, template), self.lod.faces[level])
            spacing = torch.as_tensor(spacing, dtype=flame.v_template.dtype)
            self.register_buffer(f"spacing_{level}", spacing, persistent=False)  # derived from FLAME

    # ------------------------------------------------------------------ helpers
    @property
    def num_lods(self) -> int:
        """K + 1: levels 0..K."""
        return self.config.lod.levels + 1

    def spacing(self, level: int) -> Tensor:
        """[V_level] mean edge length at each vertex of the template subdivided to ``level``
        (world units): the size unit of that level's Gaussians."""
        return getattr(self, f"spacing_{level}")

    def source_camera(self) -> Camera:
        """The config's frontal camera for an ``image_size`` crop (``camera.focal_normalized``,
        at ``camera.distance`` on +z, looking at the origin): :meth:`encode`'s default, the
        source view when the head pose is in the FLAME rotation rather than in the camera."""
        size, camera = self.config.image_size, self.config.camera
        return Camera.look_at((0.0, 0.0, camera.distance), (0.0, 0.0, 0.0), size, size, camera.focal_normalized)

    # ------------------------------------------------------------------ the two paths
    def encode(
        self,
        image: Tensor,
        source: FlameCoefficients,
        portrait_mask: Tensor,
        cameras: Sequence[Camera] | None = None,
        max_lod: int | None = None,
    ) -> SourceEncoding:
        """Everything of the avatar but the head's per-frame positions.

        Args:
            image: [B, 3, S, S] source photos, RGB in [0, 1] (S = ``config.image_size``).
            source: their FLAME coefficients (shape, expression, pose).
            portrait_mask: [B, 1, H, W] in [0, 1], covering the photo.
            cameras: B source cameras (head pose as extrinsic, GAGAvatar's convention);
                default :meth:`source_camera` for all.
            max_lod: the finest level to encode (default K); training at a coarse level
                need not pay for the finer ones.
        """
        batch = image.shape[0]
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, S, S], got {list(image.shape)}")
        if portrait_mask.ndim != 4 or portrait_mask.shape[:2] != (batch, 1):
            raise ValueError(f"portrait_mask must be [{batch}, 1, H, W], got {list(portrait_mask.shape)}")
        if source.batch_size not in (None, batch):
            raise ValueError(f"source FLAME batch {source.batch_size} does not match the image batch {batch}")
        cameras = tuple(cameras) if cameras is not None else (self.source_camera(),) * batch
        if len(cameras) != batch:
            raise ValueError(f"{len(cameras)} cameras for a batch of {batch}")
        max_lod = self.config.lod.levels if max_lod is None else max_lod
        self._check_lod(max_lod, self.config.lod.levels)

        size = self.config.model.backbone_image_size
        backbone_input = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        seen = self.backbone(backbone_input)
        plane = self.local_features(seen.layers)  # [B, C, P, P]
        global_features = self.global_branch(seen.identity)  # [B, V_0, C]
        offsets = self.offset_mlp(global_features)
        shape = source.shape if source.shape is not None else image.new_zeros(batch, self.poser.flame.n_shape)
        base = self.poser(shape, offsets, source)  # [B, V_0, 3]

        levels = []
        for level, level_global in enumerate(self.coarse_to_fine(global_features, self.lod.steps, max_lod)):
            vertices = self.lod.apply(level, base)
            mask, depth = visibility(vertices, self.lod.faces[level], cameras)
            fused = fuse(level_global, sample_plane(plane, vertices, cameras), mask)
            levels.append(self.heads(fused, self.spacing(level)))
        shoulders = self.shoulders(plane, portrait_mask, depth, base, cameras)  # the finest head's depth
        return SourceEncoding(shape, offsets, tuple(levels), tuple(shoulders), cameras)

    def gaussians(self, encoding: SourceEncoding, driving: FlameCoefficients, lod: int) -> list[Gaussians]:
        """One frame: the avatar re-posed by ``driving`` (expression, eyelids, pose; its
        ``shape`` is ignored) at level ``lod``, head then shoulders, one set per batch item."""
        self._check_lod(lod, encoding.max_lod)
        if driving.batch_size not in (None, encoding.batch_size):
            raise ValueError(f"driving batch {driving.batch_size} does not match the encoding's {encoding.batch_size}")
        vertices = self.lod.apply(lod, self.poser(encoding.shape, encoding.offsets, driving))
        head = encoding.levels[lod]
        return [
            Gaussians.cat([head.at(item, vertices[item]), encoding.shoulders[item]])
            for item in range(encoding.batch_size)
        ]

    def forward(
        self,
        image: Tensor,
        source: FlameCoefficients,
        portrait_mask: Tensor,
        driving: FlameCoefficients,
        lod: int,
        cameras: Sequence[Camera] | None = None,
    ) -> tuple[list[Gaussians], Tensor]:
        """Training: :meth:`encode` up to ``lod``, then :meth:`gaussians` for the driving frames.
        Returns the B Gaussian sets and the offsets [B, V_0, 3] (for the ||offset||^2 term)."""
        encoding = self.encode(image, source, portrait_mask, cameras, max_lod=lod)
        return self.gaussians(encoding, driving, lod), encoding.offsets

    def refine(self, feature_image: Tensor) -> Tensor:
        """Splatted features [B, splat_channels, H, W] -> RGB [B, 3, H, W] in [0, 1]."""
        return self.refiner(feature_image)

    @staticmethod
    def _check_lod(lod: int, finest: int) -> None:
        if not 0 <= lod <= finest:
            raise ValueError(f"level of detail {lod} is outside 0..{finest}")


def learned_modules(config: Config, num_vertices: int, embed_dim: int) -> dict[str, nn.Module]:
    """The network's trained modules by attribute name (what a checkpoint holds), for a FLAME
    of ``num_vertices`` vertices and a backbone of width ``embed_dim``."""
    model = config.model
    return {
        "local_features": DptDecoder(embed_dim, model.feature_dim, model.feature_plane_size),
        "global_branch": GlobalBranch(num_vertices, embed_dim, model.feature_dim, model.global_layers, model.global_heads),
        "offset_mlp": OffsetMlp(model.feature_dim),
        "coarse_to_fine": CoarseToFine(config.lod.levels, model.feature_dim),
        "heads": GaussianHeads(model.feature_dim, model.splat_channels),
        "shoulders": ShoulderBranch(model.feature_dim, model.splat_channels),
        "refiner": NeuralRefiner(model.splat_channels),
    }


def parameter_counts(net: nn.Module) -> dict[str, dict[str, int]]:
    """Parameters per top-level module of ``net`` that has any: ``{"trainable": n, "frozen": n}``."""
    counts = {}
    for name, module in net.named_children():
        parameters = list(module.parameters())
        if parameters:
            trainable = sum(p.numel() for p in parameters if p.requires_grad)
            counts[name] = {"trainable": trainable, "frozen": sum(p.numel() for p in parameters) - trainable}
    return counts
