"""Gaussian heads (eq. 7): MLPs from a per-vertex feature to the Gaussian's feature colour,
opacity, scale and rotation; its position is its vertex (eq. 8).

The activations, shared with the shoulder branch (:func:`activate`):

* feature colour: ``splat_channels`` values; the first 3 pass a sigmoid (a coarse RGB in
  [0, 1], what the refiner's input starts from), the others are free;
* opacity: sigmoid;
* scale: ``MAX_SCALE * size * sigmoid``, with ``size`` the local spacing of the Gaussians
  (a level's mean edge length at the vertex, a shoulder cell's side), so that scales follow
  the level of detail and stay bounded; half of ``MAX_SCALE`` at initialisation;
* rotation: a quaternion (w, x, y, z), normalised, starting near the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.render.gaussians import Gaussians

#: Largest scale (standard deviation per axis) in units of the local spacing.
MAX_SCALE = 1.5
#: Channels of the feature colour that are a coarse RGB.
RGB_CHANNELS = 3
#: Raw outputs besides the feature colour: opacity 1, scale 3, rotation 4.
OPACITY_SIZE, SCALE_SIZE, ROTATION_SIZE = 1, 3, 4


def raw_size(splat_channels: int) -> int:
    """Raw values per Gaussian that :func:`activate` takes."""
    return splat_channels + OPACITY_SIZE + SCALE_SIZE + ROTATION_SIZE


@dataclass(frozen=True)
class GaussianAttributes:
    """A batch of Gaussians without positions.

    Attributes:
        features: [B, N, splat_channels], the first 3 a coarse RGB.
        opacities: [B, N] in (0, 1).
        scales: [B, N, 3] standard deviations in world units.
        quats: [B, N, 4] unit quaternions (w, x, y, z).
    """

    features: Tensor
    opacities: Tensor
    scales: Tensor
    quats: Tensor

    def at(self, item: int, means: Tensor) -> Gaussians:
        """Batch item ``item``'s Gaussians placed at ``means`` [N, 3]."""
        return Gaussians(means, self.quats[item], self.scales[item], self.opacities[item], self.features[item])


def activate(raw: Tensor, size: Tensor) -> GaussianAttributes:
    """Raw head outputs [B, N, raw_size(C)] in the order colour, opacity, scale, rotation, and
    the local spacing ``size`` [B, N] or [N] -> attributes (see the module docstring)."""
    colour, opacity, scale, rotation = raw.split(
        [raw.shape[-1] - OPACITY_SIZE - SCALE_SIZE - ROTATION_SIZE, OPACITY_SIZE, SCALE_SIZE, ROTATION_SIZE], dim=-1
    )
    features = torch.cat([torch.sigmoid(colour[..., :RGB_CHANNELS]), colour[..., RGB_CHANNELS:]], dim=-1)
    identity = rotation.new_tensor([1.0, 0.0, 0.0, 0.0])
    return GaussianAttributes(
        features=features,
        opacities=torch.sigmoid(opacity[..., 0]),
        scales=MAX_SCALE * size[..., None] * torch.sigmoid(scale),
        quats=F.normalize(rotation + identity, dim=-1),
    )


def _mlp(feature_dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.GELU(), nn.Linear(feature_dim, out))


class GaussianHeads(nn.Module):
    """F_h [B, N, C] and the local spacing [B, N] or [N] -> :class:`GaussianAttributes`; one
    MLP per attribute, shared by every level of detail."""

    def __init__(self, feature_dim: int, splat_channels: int) -> None:
        super().__init__()
        if splat_channels < RGB_CHANNELS:
            raise ValueError(f"splat_channels must be at least {RGB_CHANNELS} (a coarse RGB), got {splat_channels}")
        self.colour = _mlp(feature_dim, splat_channels)
        self.opacity = _mlp(feature_dim, OPACITY_SIZE)
        self.scale = _mlp(feature_dim, SCALE_SIZE)
        self.rotation = _mlp(feature_dim, ROTATION_SIZE)

    def forward(self, features: Tensor, size: Tensor) -> GaussianAttributes:
        heads = (self.colour, self.opacity, self.scale, self.rotation)
        return activate(torch.cat([head(features) for head in heads], dim=-1), size)
