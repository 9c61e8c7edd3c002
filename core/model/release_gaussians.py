"""The released network's Gaussians: the head's at the target mesh's vertices, the shoulders' on
the plane behind the head, in one set, shoulders first (the release's order).

Shoulder cells become Gaussians the release's way: the cell's opacity times the plane's
background mask (0 where the nearer half of the head covers the cell), the position
``plane point + position * plane direction``, and, for a batch of one image, only cells whose
masked opacity exceeds :data:`MIN_OPACITY` are kept (row-major order kept; with more images
every cell is kept, so that the batch stays rectangular).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from core.model.gaussian_generators import ATTRIBUTES, GaussianAttributes, ShoulderCells

MIN_OPACITY = 1e-4
FIELDS = ("xyz", *ATTRIBUTES)


@dataclass(frozen=True)
class ReleaseGaussians:
    """N Gaussians per image (the release's ``gs_params``).

    Attributes:
        xyz: [B, N, 3] world positions; colors: [B, N, 32]; opacities: [B, N, 1];
        scales: [B, N, 3]; rotations: [B, N, 4] (raw, see ``core.model.gaussian_generators``).
    """

    xyz: Tensor
    colors: Tensor
    opacities: Tensor
    scales: Tensor
    rotations: Tensor

    @classmethod
    def at(cls, xyz: Tensor, attributes: GaussianAttributes) -> ReleaseGaussians:
        return cls(xyz, *(getattr(attributes, name) for name in ATTRIBUTES))

    @classmethod
    def cat(cls, parts: list[ReleaseGaussians]) -> ReleaseGaussians:
        """The parts' Gaussians, in order, along N."""
        return cls(*(torch.cat([getattr(part, name) for part in parts], dim=1) for name in FIELDS))

    @property
    def count(self) -> int:
        return self.xyz.shape[1]

    def as_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in FIELDS}

    def with_last_xyz(self, xyz: Tensor) -> ReleaseGaussians:
        """A copy whose last ``xyz.shape[1]`` positions (the head's) are ``xyz`` [B, n, 3]."""
        moved = torch.cat([self.xyz[:, : self.count - xyz.shape[1]], xyz], dim=1)
        return ReleaseGaussians(moved, self.colors, self.opacities, self.scales, self.rotations)


def shoulder_gaussians(
    cells: ShoulderCells, plane_points: Tensor, plane_direction: Tensor, plane_mask: Tensor
) -> tuple[ReleaseGaussians, Tensor]:
    """The shoulder Gaussians of the plane's S x S cells.

    Args:
        cells: the shoulder generator's output, N = S * S cells row-major.
        plane_points: [B, N, 3] the cells' points on the plane; plane_direction: [B, 3].
        plane_mask: [B, S, S, 1] background mask of the plane.

    Returns:
        the Gaussians ([B, N, ...], or [1, kept, ...] for one image) and ``valid`` [B, N] bool,
        the cells kept.
    """
    batch = plane_points.shape[0]
    opacities = cells.attributes.opacities * plane_mask.reshape(batch, -1, 1)
    xyz = plane_points + cells.positions * plane_direction[:, None]
    a = cells.attributes
    gaussians = ReleaseGaussians(xyz, a.colors, opacities, a.scales, a.rotations)
    if batch != 1:
        return gaussians, torch.ones_like(opacities[..., 0], dtype=torch.bool)
    valid = opacities[..., 0] > MIN_OPACITY
    kept = ReleaseGaussians(*(value[valid][None] for value in gaussians.as_dict().values()))
    return kept, valid
