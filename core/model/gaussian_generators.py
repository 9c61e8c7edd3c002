"""The Gaussian generators of the released OMG-Avatar: per-vertex MLPs for the head (its
``gs_head_generators``, one per subdivision level) and a convolutional network over the feature
plane for the shoulders (its ``gs_shoulder_generator``). Attribute names are the release's, so
the state-dict keys are its keys below those prefixes.

Both keep the release's activations, including two quirks its weights were trained with:

* head rotations are L2-normalised over the *vertex* axis of a generator's split (each of the
  four quaternion columns has unit norm over the split), not per quaternion; the raw values are
  kept here (renderers normalise per Gaussian);
* the shoulder colours' sigmoid is applied to grid *columns* 0..2 of all 32 channels, not to
  channels 0..2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.direction_code import DIRECTION_CODE_DIM, with_direction_code

#: Channels per Gaussian: colour features (the first 3 RGB-like), opacity, scale, rotation.
COLOR_CHANNELS, OPACITY_CHANNELS, SCALE_CHANNELS, ROTATION_CHANNELS = 32, 1, 3, 4
MAX_SCALE = 0.05  # world units
HIDDEN = 128
RGB = 3


@dataclass(frozen=True)
class GaussianAttributes:
    """Gaussians without positions, N per image.

    Attributes:
        colors: [B, N, 32]; opacities: [B, N, 1] in (0, 1); scales: [B, N, 3] in (0, 0.05);
        rotations: [B, N, 4] quaternions as the release makes them (see the module docstring).
    """

    colors: Tensor
    opacities: Tensor
    scales: Tensor
    rotations: Tensor

    @staticmethod
    def cat(parts: list[GaussianAttributes]) -> GaussianAttributes:
        """The parts' Gaussians, in order, along N."""
        return GaussianAttributes(*(torch.cat([getattr(part, name) for part in parts], dim=1) for name in ATTRIBUTES))


ATTRIBUTES = ("colors", "opacities", "scales", "rotations")


def _mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class HeadGaussianGenerator(nn.Module):
    """Per-vertex features [B, n, C] and the view-direction code [B, 27] -> the n vertices'
    :class:`GaussianAttributes` (one split of the head).

    ``offset_layers`` (an offset MLP ending in tanh) carries release weights but is never
    evaluated, as in the release.
    """

    def __init__(self, feature_dim: int = 256, hidden: int = HIDDEN) -> None:
        super().__init__()
        in_dim = feature_dim + DIRECTION_CODE_DIM
        self.color_layers = _mlp(in_dim, COLOR_CHANNELS, hidden)
        self.opacity_layers = _mlp(in_dim, OPACITY_CHANNELS, hidden)
        self.scale_layers = _mlp(in_dim, SCALE_CHANNELS, hidden)
        self.rotation_layers = _mlp(in_dim, ROTATION_CHANNELS, hidden)
        self.offset_layers = nn.Sequential(*_mlp(in_dim, 3, hidden), nn.Tanh())

    def forward(self, features: Tensor, code: Tensor) -> GaussianAttributes:
        x = with_direction_code(features, code)
        colors = self.color_layers(x)
        colors = torch.cat([torch.sigmoid(colors[..., :RGB]), colors[..., RGB:]], dim=-1)
        return GaussianAttributes(
            colors=colors,
            opacities=torch.sigmoid(self.opacity_layers(x)),
            scales=torch.sigmoid(self.scale_layers(x)) * MAX_SCALE,
            rotations=F.normalize(self.rotation_layers(x), dim=1),  # over the vertices (quirk)
        )


@dataclass(frozen=True)
class ShoulderCells:
    """The shoulder generator's output, one Gaussian per plane cell, cells row-major.

    Attributes:
        attributes: N = S * S cells' :class:`GaussianAttributes` (opacities not yet masked).
        positions: [B, N, 1] in (0, 1): distance of the cell's Gaussian behind the plane.
    """

    attributes: GaussianAttributes
    positions: Tensor


class ShoulderGaussianGenerator(nn.Module):
    """Feature plane [B, C, S, S] and the view-direction code [B, 27] -> :class:`ShoulderCells`
    (three 3x3 conv + ReLU layers of 128 channels, then a 1x1 conv to 41 channels: 32 colour,
    opacity, 3 scale, 4 rotation, position)."""

    OUT_CHANNELS = COLOR_CHANNELS + OPACITY_CHANNELS + SCALE_CHANNELS + ROTATION_CHANNELS + 1

    def __init__(self, feature_dim: int = 256, hidden: int = HIDDEN) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for in_dim in (feature_dim + DIRECTION_CODE_DIM, hidden, hidden):
            layers += [nn.Conv2d(in_dim, hidden, 3, padding=1), nn.ReLU()]
        self.gaussian_conv = nn.Sequential(*layers, nn.Conv2d(hidden, self.OUT_CHANNELS, 1))

    def forward(self, plane: Tensor, code: Tensor) -> ShoulderCells:
        code_map = code[:, :, None, None].expand(-1, -1, *plane.shape[-2:])
        out = self.gaussian_conv(torch.cat([plane, code_map], dim=1))  # [B, 41, S, S]
        sizes = (COLOR_CHANNELS, OPACITY_CHANNELS, SCALE_CHANNELS, ROTATION_CHANNELS, 1)
        colors, opacities, scales, rotations, positions = torch.split(out, sizes, dim=1)
        # The release's sigmoid hits grid columns 0..2 of every channel (the quirk).
        colors = torch.cat([torch.sigmoid(colors[..., :RGB]), colors[..., RGB:]], dim=-1)
        attributes = GaussianAttributes(
            colors=_cells(colors),
            opacities=_cells(torch.sigmoid(opacities)),
            scales=_cells(torch.sigmoid(scales) * MAX_SCALE),
            rotations=_cells(F.normalize(rotations, dim=1)),  # per cell, over the 4 channels
        )
        return ShoulderCells(attributes, _cells(torch.sigmoid(positions)))


def _cells(grid: Tensor) -> Tensor:
    """[B, C, S, S] -> [B, S * S, C], cells row-major."""
    return grid.flatten(2).transpose(1, 2)
