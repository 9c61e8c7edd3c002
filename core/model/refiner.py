"""The neural refiner: a UNet from the splatted feature image to the final RGB image.

Encoder: a double 3x3 conv block at full resolution, then one block per halving (its first
conv has stride 2); decoder: bilinear upsampling by 2, concatenation with the encoder's
skip at that resolution, a double conv block. Each conv is followed by group normalisation
(independent of the batch size, which is small) and a LeakyReLU. Sides must be multiples of
2^(levels - 1).

The output is a correction of the coarse RGB (the feature image's first 3 channels, as in
the paper): a 1x1 conv adds to the coarse colour's logit and a sigmoid gives RGB in [0, 1].
That conv starts near zero (:data:`RGB_INIT_STD`: small, not zero, so that the layers
before it get gradients from the first step), so an untrained refiner passes the coarse
image through nearly unchanged, and the sigmoid starts where its gradient lives (a refiner
predicting RGB from scratch drifted into the sigmoid's flat zero within 30 training
steps, measured).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Channels at full, 1/2, 1/4, 1/8 and 1/16 resolution.
WIDTHS = (32, 64, 128, 256, 256)
#: Slope of the LeakyReLU activations.
NEGATIVE_SLOPE = 0.2
#: Channels per group of the group normalisation.
GROUP_CHANNELS = 16
#: Standard deviation of the last conv's initial weights.
RGB_INIT_STD = 1e-3
#: The coarse colour is kept this far from 0 and 1 before its logit.
COLOUR_MARGIN = 1e-4


def _block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    groups = max(1, out_channels // GROUP_CHANNELS)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.LeakyReLU(NEGATIVE_SLOPE),
    )


class NeuralRefiner(nn.Module):
    """[B, in_channels, H, W] feature image (the first 3 channels the coarse RGB) -> [B, 3, H, W]
    RGB in [0, 1]."""

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
        nn.init.normal_(self.to_rgb.weight, std=RGB_INIT_STD)
        nn.init.zeros_(self.to_rgb.bias)

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
        coarse = features[:, :3].clamp(COLOUR_MARGIN, 1.0 - COLOUR_MARGIN)
        return torch.sigmoid(torch.logit(coarse) + self.to_rgb(x))
