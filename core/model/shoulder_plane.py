"""The release's shoulder plane: one 3D point per cell of the 296 x 296 feature grid, on the
plane through the world origin that faces the source camera, and the plane's direction.

For a release camera ``[R | T]`` (``core.geometry.release_camera``): cell (row i, column j) has
``x = linspace(1, -1, S)[j]``, ``y = linspace(1, -1, S)[i]`` (row 0 the image's top, column 0
its left: pytorch3d's +x is left, +y up), the ray ``R (x / f, y / f, 1)``; the plane direction
is ``R (0, 0, 1)`` (the camera's viewing direction), the camera centre ``o = -R T``, its
distance to the plane ``d = |o . dir|``, and the cell's point ``o + d * ray``. The shoulder
Gaussians sit at ``point + position * dir``, ``position`` in [0, 1] from the generator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.geometry.release_camera import RELEASE_FOCAL

PLANE_SIZE = 296  # the plane grid's side (the DPT feature plane's)


def shoulder_plane(transform: Tensor, size: int = PLANE_SIZE, focal: float = RELEASE_FOCAL) -> tuple[Tensor, Tensor]:
    """Plane points and direction of release cameras.

    Args:
        transform: [B, 3, 4] ``[R | T]`` source cameras.

    Returns:
        points: [B, size * size, 3] world points, cells row-major (index = row * size + col).
        direction: [B, 3] the plane's unit direction, away from the camera.
    """
    rotation = transform[:, :, :3]  # [B, 3, 3]
    translation = transform[:, :, 3:]  # [B, 3, 1]
    line = torch.linspace(1, -1, size, dtype=transform.dtype, device=transform.device)
    y, x = torch.meshgrid(line, line, indexing="ij")  # [S, S]: x varies along columns, y along rows
    rays = torch.stack([x / focal, y / focal, torch.ones_like(x)], dim=-1).reshape(1, -1, 3, 1)
    rays = torch.matmul(rotation[:, None], rays)[..., 0]  # [B, S*S, 3]
    forward = transform.new_tensor([0.0, 0.0, 1.0]).reshape(1, 3, 1)
    direction = torch.matmul(rotation, forward)[..., 0]  # [B, 3]
    origin = -torch.matmul(rotation, translation)[..., 0]  # [B, 3] camera centre
    distance = (origin * direction).sum(dim=1).abs()  # [B]
    return origin[:, None] + distance[:, None, None] * rays, direction
