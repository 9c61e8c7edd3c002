"""The release's occlusion test and the masks it derives from depth maps.

* :func:`normalized_depth` turns a raw depth buffer (``core.render.release_zbuffer``, -1 where
  empty) into [0, 1] per image: empty pixels take the farthest depth, then
  ``(d - min) / (max - min + 1e-8)``; background is 1.
* :func:`occluded_vertices` is the release's vertex test: a vertex's NDC depth (its
  ``core.geometry.release_camera.project_release`` z, not the view depth) is min-max normalised
  over all vertices of the image, and the vertex is occluded when it is ``>=`` the normalised
  map at its pixel (pixel indices truncated toward zero, not clamped: a vertex projecting
  outside the image is occluded). Everything in float32, as the release computes it: the NDC
  depth of a head spans only ~1e-4, so rounding decides a few vertices.
* :func:`plane_mask` is the shoulder plane's background mask: ``1 - [depth < 0.5]`` (the nearer
  half of the head's depth range is "head"), resized to the plane grid with antialiased
  bilinear filtering.
* :func:`faces_without_vertices` drops faces touching given vertices (the release's face-only
  mesh: FLAME's ``neck`` and ``boundary`` masks removed).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.model.shoulder_plane import PLANE_SIZE


def normalized_depth(zbuffer: Tensor) -> Tensor:
    """[B, H, W] raw depth (-1 where empty) -> [B, 1, H, W] depth normalised to [0, 1] per
    image, empty pixels at 1 (the farthest covered depth before normalising)."""
    depth = zbuffer[:, None]
    farthest = torch.amax(depth.clamp_min(0), dim=(1, 2, 3), keepdim=True)
    depth = torch.where(depth < 0, farthest, depth)
    low = depth.amin(dim=(2, 3), keepdim=True)
    high = depth.amax(dim=(2, 3), keepdim=True)
    return (depth - low) / (high - low + 1e-8)


def occluded_vertices(ndc: Tensor, depth_map: Tensor) -> Tensor:
    """The release's occlusion test.

    Args:
        ndc: [B, V, 3] NDC of the vertices (``project_release``), float32; not modified.
        depth_map: [B, 1, S, S] normalised depth (:func:`normalized_depth`) of the same image.

    Returns:
        [B, V] bool, True = occluded (or outside the image).
    """
    size = depth_map.shape[-1]
    pixel = (ndc[..., :2] * 0.5 + 0.5) * size
    z = ndc[..., 2]
    low, high = z.amin(dim=1, keepdim=True), z.amax(dim=1, keepdim=True)
    depth = (z - low) / (high - low + 1e-8) * size
    u, v = pixel[..., 0].long(), pixel[..., 1].long()  # truncation toward zero
    inside = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    batch = torch.arange(ndc.shape[0], device=ndc.device)[:, None].expand_as(u)
    map_depth = (depth_map[:, 0] * size)[batch, v.clamp(0, size - 1), u.clamp(0, size - 1)]
    return ~inside | (depth >= map_depth)


def plane_mask(depth_map: Tensor, size: int = PLANE_SIZE) -> Tensor:
    """[B, 1, H, W] normalised depth -> [B, size, size, 1] background mask of the shoulder plane
    (1 off the head's nearer half, 0 on it), antialiased bilinear resize as torchvision's."""
    background = (1.0 - (depth_map < 0.5).float()).clamp(0.0, 1.0)
    resized = F.interpolate(background, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized[:, 0, :, :, None]


def faces_without_vertices(faces: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """``faces [F, 3]`` without those that use any of ``vertices [N]`` (order kept)."""
    faces = np.asarray(faces, dtype=np.int64)
    return faces[~np.isin(faces, np.asarray(vertices, dtype=np.int64)).any(axis=1)]
