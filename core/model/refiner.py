"""The neural refiner: a UNet from the splatted feature image to the final RGB image.

Encoder: a double 3x3 conv block at full resolution, then one block per halving (its first
conv has stride 2); decoder: bilinear upsampling by 2, concatenation with the encoder's
skip at that resolution, a double conv block; a 1x1 conv and a sigmoid give RGB in [0, 1].
No normalisation layers (batches are small). Sides must be multiples of 2^(levels - 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Channels at full, 1/2, 1/4, 1/8 and 1/16 resolution.
WIDTHS = (32, 64, 128, 256, 256)
#: Slope of the LeakyReLU activations.
NEGATIVE_SLOPE = 0.2


def _block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.LeakyReLU(NEGATIVE_SLOPE),
    )


class NeuralRefiner(nn.Module):
    """[B, in_channels, H, W] feature image -> [B, 3, H, W] RGB in [0, 1]."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            [_block(in_channels, widths[0])]
            + [_block(coarse_in, coarse_out, stride=2) for coarse_in, coarse_out in zip(widths, widths[1:])]
        )
        self.decoder = nn.ModuleList(
            _block(coarse + fine, fine) for coarse, fine in zip(widths[:0:-1], widths[-2::-1])
        )
        self.to_rgb = nn.Conv2d(widths[0], 3, 1)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this."""
        return 2 ** (len(self.encoder) - 1)

    def forward(self, features: Tensor) -> Tensor:
        if features.shape[-1] % self.multiple or features.shape[-2] % self.multiple:
            sides = list(features.shape[-2:])
            raise ValueError(f"refiner input sides must be multiples of {self.multiple}, got {sides}")
        skips = []
        x = features
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return torch.sigmoid(self.to_rgb(x))
