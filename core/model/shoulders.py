"""The shoulder branch (eq. 9-11): a conv net over the local feature plane predicts, per
cell, the Gaussian attributes of the head (:func:`core.model.heads.activate`) and an offset
along the cell's view ray; the cells of the shoulder mask become Gaussians beside the head's.

Cells are the local plane pooled by :data:`CELL_POOL` (a stride-2 convolution): 148 x 148 =
21,904 cells at the paper's 296 plane, each 3.5 px of the 512 crop. The shoulder mask is the
portrait mask below the head's centre (its projected centroid's row) minus the head's
depth-buffer mask, each pooled to the cells (kept when at least :data:`KEEP_FRACTION` is
mask and less than that is head). In a GAGAvatar-framed portrait that is roughly 40% of
the cells, about 9K Gaussians: the paper's count. It varies with the mask.

A cell's Gaussian sits on the ray through its centre, at the camera-space depth of the
head's centre plus the predicted offset (bounded by :data:`DEPTH_RANGE`), so the source view
sees it exactly on its cell; its size unit is the cell's side at that depth.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.geometry.camera import Camera
from core.model.heads import activate, raw_size
from core.render.gaussians import Gaussians

#: Cells per side = plane size / CELL_POOL.
CELL_POOL = 2
#: Channels of the conv net's hidden layers.
HIDDEN_CHANNELS = 128
#: A cell is shoulder when the portrait mask covers at least this fraction of it and the head less.
KEEP_FRACTION = 0.5
#: The offset along a cell's ray is ``DEPTH_RANGE * tanh(raw)`` world units (FLAME x5: 40 cm).
DEPTH_RANGE = 2.0


class ShoulderNet(nn.Module):
    """Local plane [B, C, P, P] -> raw per-cell values [B, raw_size(splat_channels) + 1, G, G]
    (G = P / CELL_POOL): the head's raw attributes, then the depth offset."""

    def __init__(self, feature_dim: int, splat_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(feature_dim, HIDDEN_CHANNELS, 3, stride=CELL_POOL, padding=1),
            nn.GELU(),
            nn.Conv2d(HIDDEN_CHANNELS, HIDDEN_CHANNELS, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(HIDDEN_CHANNELS, raw_size(splat_channels) + 1, 1),
        )

    def forward(self, plane: Tensor) -> Tensor:
        return self.layers(plane)


def shoulder_cells(portrait_mask: Tensor, head_depth: Tensor, head_row: float, cells: int) -> Tensor:
    """The shoulder mask of one image on a ``cells`` x ``cells`` grid.

    Args:
        portrait_mask: [1, H', W'] in [0, 1] (any size; it covers the image).
        head_depth: [H, W] the head's depth buffer in the source camera (+inf off the head).
        head_row: the head centre's row in the camera's pixels (0 at the top, H at the bottom).

    Returns:
        [cells, cells] bool.
    """
    portrait = F.adaptive_avg_pool2d(portrait_mask[None].to(head_depth.dtype), cells)[0, 0]
    head = F.adaptive_avg_pool2d(torch.isfinite(head_depth)[None, None].to(head_depth.dtype), cells)[0, 0]
    rows = (torch.arange(cells, device=head_depth.device, dtype=head_depth.dtype) + 0.5) * head_depth.shape[0] / cells
    below = (rows > head_row)[:, None]
    return below & (portrait >= KEEP_FRACTION) & (head < KEEP_FRACTION)


def unproject(camera: Camera, uv: Tensor, depth: Tensor) -> Tensor:
    """Pixels [N, 2] at camera-space depths [N] -> world points [N, 3] (Camera.project's inverse)."""
    K = torch.as_tensor(camera.K, dtype=uv.dtype, device=uv.device)
    R = torch.as_tensor(camera.R, dtype=uv.dtype, device=uv.device)
    t = torch.as_tensor(camera.t, dtype=uv.dtype, device=uv.device)
    xy = (uv - K[:2, 2]) / K.diagonal()[:2] * depth[:, None]
    return (torch.cat([xy, depth[:, None]], dim=1) - t) @ R


class ShoulderBranch(nn.Module):
    """The conv net and the placement of its kept cells."""

    def __init__(self, feature_dim: int, splat_channels: int) -> None:
        super().__init__()
        self.net = ShoulderNet(feature_dim, splat_channels)

    def forward(
        self,
        plane: Tensor,
        portrait_mask: Tensor,
        head_depth: Tensor,
        head_vertices: Tensor,
        cameras: Sequence[Camera],
    ) -> list[Gaussians]:
        """Shoulder Gaussians per image.

        Args:
            plane: [B, C, P, P] local feature plane.
            portrait_mask: [B, 1, H', W'] in [0, 1].
            head_depth: [B, H, W] the head mesh's depth buffers in the source cameras.
            head_vertices: [B, V, 3] the source head (its centroid sets the row and depth).
            cameras: B source cameras of size H x W.

        Returns:
            B Gaussians, each with as many as its image has shoulder cells.
        """
        raw = self.net(plane)  # [B, R + 1, G, G]
        cells = raw.shape[-1]
        gaussians = []
        for item, camera in enumerate(cameras):
            uv_centre, depth_centre = camera.project(head_vertices[item].detach().mean(dim=0))
            keep = shoulder_cells(portrait_mask[item], head_depth[item], float(uv_centre[1]), cells)
            rows, columns = torch.nonzero(keep, as_tuple=True)
            values = raw[item, :, rows, columns].T  # [N, R + 1]
            cell_side = camera.width / cells
            uv = torch.stack([columns, rows], dim=1).to(raw.dtype) + 0.5
            uv = uv * uv.new_tensor([cell_side, camera.height / cells])
            depth = depth_centre.to(raw.dtype) + DEPTH_RANGE * torch.tanh(values[:, -1])
            size = cell_side * depth.detach() / float(camera.K[0, 0])
            attributes = activate(values[None, :, :-1], size[None])
            gaussians.append(attributes.at(0, unproject(camera, uv, depth)))
        return gaussians
