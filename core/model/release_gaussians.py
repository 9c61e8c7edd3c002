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

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from core.model.gaussian_generators import ATTRIBUTES, GaussianAttributes, ShoulderCells
from core.render.projection import drawn_covariance

MIN_OPACITY = 1e-4
#: Smallest standard deviation a drawn covariance gives (world units): a raw quaternion can
#: make its matrix singular, and renderers and avatar files need positive scales.
MIN_DRAWN_SCALE = 1e-7
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


def drawn_rotations(raw_quats: Tensor, scales: Tensor) -> tuple[Tensor, Tensor]:
    """Unit quaternions and scales with the covariance the release's rasteriser draws.

    The release renders with the 3DGS rasteriser, which builds ``M = R(q) diag(s)`` from the
    quaternion *without normalising it* and draws ``Sigma = M M^T``; the head generators' raw
    quaternions are far from unit length (normalised over the vertex axis), so their Gaussians
    are drawn with a covariance no unit quaternion and the same scales give. Renderers that
    normalise (gsplat, ours) draw the same Gaussians from the eigen-decomposition of ``Sigma``:
    its eigenvectors as a rotation and the square roots of its eigenvalues as scales (exact up
    to :data:`MIN_DRAWN_SCALE` for singular ones).

    Args:
        raw_quats: [N, 4] (w, x, y, z) as the network makes them; scales: [N, 3].

    Returns:
        unit quaternions [N, 4] (w, x, y, z) and scales [N, 3], float32.
    """
    variances, axes = torch.linalg.eigh(drawn_covariance(raw_quats.double(), scales.double()))
    axes = axes.numpy()
    axes[:, :, 2] *= np.sign(np.linalg.det(axes))[:, None]  # a rotation, not a reflection
    x, y, z, w = Rotation.from_matrix(axes).as_quat().T  # scipy: scalar last
    quats = torch.from_numpy(np.stack([w, x, y, z], axis=1)).float()
    return quats, variances.clamp_min(MIN_DRAWN_SCALE**2).sqrt().float()
