"""Occlusion-aware feature fusion (OAFF, eq. 5-6): a vertex takes the photo's local feature
only where the source camera sees it.

Visibility comes from the depth buffer of the level's own head mesh (eq. 5), by the rules of
:mod:`core.render.zbuffer`; it is a mask, not differentiated. Fusion is
``F_h = F_global + F_local * M`` (eq. 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from core.geometry.camera import Camera
from core.render.zbuffer import mesh_depth, visible_vertices


@torch.no_grad()
def visibility(vertices: Tensor, faces: np.ndarray, cameras: Sequence[Camera]) -> tuple[Tensor, Tensor]:
    """Which vertices the source cameras see.

    Args:
        vertices: [B, V, 3] world-space vertices of the head mesh.
        faces: [F, 3] its triangles.
        cameras: B source cameras, all of one size H x W.

    Returns:
        mask: [B, V] 1.0 where visible, else 0.0 (vertices' dtype).
        depth: [B, H, W] the head's depth buffers (+inf where the head is not).
    """
    masks, depths = [], []
    for points, camera in zip(vertices.detach(), cameras, strict=True):
        depth = mesh_depth(points, faces, camera)
        masks.append(visible_vertices(points, faces, camera, depth=depth))
        depths.append(depth)
    return torch.stack(masks).to(vertices.dtype), torch.stack(depths)


def fuse(global_features: Tensor, local_features: Tensor, mask: Tensor) -> Tensor:
    """F_h [B, V, C] from F_global and F_local [B, V, C] and the visibility mask [B, V]."""
    return global_features + local_features * mask[..., None]
