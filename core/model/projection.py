"""Sampling the local feature plane at projected vertices, as the release does (its eq. 4).

A vertex with normalised image coordinates ``n`` in [0, 1] (``project_release``) reads the
``S x S`` plane at ``clamp(n * S, 0, S - 1)`` in pixel units, with bilinear interpolation over
the pixel *corners* (``grid_sample`` with ``align_corners=True``, i.e. grid value
``coord / (S - 1) * 2 - 1``). Note the scale: ``n * S`` but corners at 0..S-1, so a vertex at
the image's right edge reads the last column and the sample grid is stretched by S / (S - 1)
relative to pixel centres. Vertices off the image are clamped to its border.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sample_plane(plane: Tensor, n_coords: Tensor) -> Tensor:
    """Features of ``plane`` at normalised coordinates.

    Args:
        plane: [B, C, H, W] feature plane (the release's is 256 x 296 x 296).
        n_coords: [B, V, 2] normalised (u right, v down) coordinates in [0, 1].

    Returns:
        [B, V, C] bilinearly sampled features.
    """
    height, width = plane.shape[-2:]
    coords = (n_coords * width).clamp(0, width - 1)  # the release scales both axes by the width
    grid = coords.new_empty(coords.shape)
    grid[..., 0] = coords[..., 0] / (width - 1) * 2 - 1
    grid[..., 1] = coords[..., 1] / (height - 1) * 2 - 1
    sampled = F.grid_sample(plane, grid[:, :, None], mode="bilinear", align_corners=True)  # [B, C, V, 1]
    return sampled[..., 0].permute(0, 2, 1)
