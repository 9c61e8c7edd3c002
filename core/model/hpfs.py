"""Hierarchical projection feature sampling (HPFS, eq. 4): the local feature of a vertex at
any level is the local plane sampled bilinearly where the source camera projects it.

The plane covers the source image exactly, whatever its resolution: with
:class:`~core.geometry.camera.Camera`'s pixel convention (pixel i spans [i, i + 1)), pixel
coordinate u maps to ``2 u / W - 1`` and ``grid_sample`` runs with ``align_corners=False``,
so -1 and +1 are the image's outer edges. Vertices outside the image or behind the camera
get zeros. Sampling is differentiable in the plane and in the vertex positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from core.geometry.camera import Camera
from core.render.constants import NEAR_PLANE

#: Grid coordinate of vertices behind the camera: outside [-1, 1], so they sample zeros.
OUTSIDE = 2.0


def plane_grid(vertices: Tensor, camera: Camera) -> Tensor:
    """[V, 3] world vertices -> [V, 2] ``grid_sample`` coordinates in the camera's image."""
    uv, depth = camera.project(vertices)
    size = uv.new_tensor([camera.width, camera.height])
    grid = 2.0 * uv / size - 1.0
    return torch.where((depth > NEAR_PLANE)[:, None], grid, torch.full_like(grid, OUTSIDE))


def sample_plane(plane: Tensor, vertices: Tensor, cameras: Sequence[Camera]) -> Tensor:
    """Local features of vertices.

    Args:
        plane: [B, C, P, P] local feature plane of the source images.
        vertices: [B, V, 3] world-space vertices.
        cameras: B source cameras.

    Returns:
        [B, V, C].
    """
    grid = torch.stack([plane_grid(v, camera) for v, camera in zip(vertices, cameras, strict=True)])
    sampled = F.grid_sample(plane, grid[:, None], mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[:, :, 0].transpose(1, 2)  # [B, C, 1, V] -> [B, V, C]
