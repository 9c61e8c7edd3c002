"""The neural refiner of the released OMG-Avatar (its ``StyleUNetLight``): the splatted feature
image [B, 32, 512, 512] (the first 3 channels a coarse RGB) -> RGB [B, 3, 512, 512] in [0, 1].

A U-Net encoder, then a StyleGAN2-like decoder (:mod:`core.model.style_decoder`):

* down: a 1x1 conv, then residual blocks halving the side S -> S/2 -> ... -> 4, a 3x3 conv,
  and a linear layer from the 4x4 map to the style code [B, style_dim];
* up: residual blocks doubling the side 4 -> ... -> S, each after adding the down path's map
  of its input's side; at every side r = 8..S two small conv nets turn the map
  [B, encoder_widths[r], r, r] into a scale and a shift [B, decoder_widths[r], r, r];
* the decoder draws the image from the style code, modulated at every side by that scale and
  shift; a sigmoid gives RGB.

Attribute names are the release's (its ``upsampler.*`` keys without the prefix), so its
checkpoint loads with nothing missing or unexpected. Its ``toRGB`` convs are kept for that
reason only: the release never uses them either. The defaults are the release's sizes; smaller
ones make a small refiner (tests, the tiny config).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.style_decoder import BASE_SIDE, NEGATIVE_SLOPE, NoiseMode, StyleDecoder, resample, resolutions

#: The release's channels of the U-Net encoder per side.
ENCODER_WIDTHS = MappingProxyType({4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 64, 256: 32, 512: 16, 1024: 8})
#: The release's channels of the decoder per side (twice the encoder's).
DECODER_WIDTHS = MappingProxyType({side: 2 * width for side, width in ENCODER_WIDTHS.items()})


class ResampleBlock(nn.Module):
    """Residual block that halves or doubles the side (bilinear): [B, C_in, H, W] ->
    [B, C_out, H * factor, W * factor]. Main path: 3x3 conv, LeakyReLU, resample, 3x3 conv to
    C_out, LeakyReLU; skip path: resample, 1x1 conv without bias."""

    def __init__(self, in_channels: int, out_channels: int, factor: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        out = resample(F.leaky_relu_(self.conv1(x), NEGATIVE_SLOPE), self.factor)
        # The sum goes into the skip conv's output: the LeakyReLU's backward needs its own.
        return self.skip(resample(x, self.factor)).add_(F.leaky_relu_(self.conv2(out), NEGATIVE_SLOPE))


def _condition(in_channels: int, out_channels: int) -> nn.Sequential:
    """[B, C_in, r, r] -> [B, C_out, r, r]: 3x3 conv, LeakyReLU, 3x3 conv."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=1),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
    )


class StyleRefiner(nn.Module):
    """[B, in_channels, S, S] feature image -> [B, out_channels, S, S] in [0, 1].

    Args:
        in_channels: channels of the feature image (the splat channels).
        image_size: S, a power of two >= 8 (input and output side).
        style_dim: width of the style code and of the decoder's style MLP.
        mlp_layers: linear layers of the style MLP.
        encoder_widths, decoder_widths: channels per side, covering the sides 4, 8, ..., S.
        out_channels: channels of the output image.
    """

    def __init__(
        self,
        in_channels: int = 32,
        image_size: int = 512,
        style_dim: int = 512,
        mlp_layers: int = 8,
        encoder_widths: Mapping[int, int] = ENCODER_WIDTHS,
        decoder_widths: Mapping[int, int] = DECODER_WIDTHS,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        sides = resolutions(image_size)
        widths = encoder_widths
        self.in_channels, self.image_size = in_channels, image_size
        self.conv_body_first = nn.Conv2d(in_channels, widths[image_size], 1)
        self.conv_body_down = nn.ModuleList(ResampleBlock(widths[side], widths[side // 2], 0.5) for side in sides[::-1])
        self.final_conv = nn.Conv2d(widths[BASE_SIDE], widths[BASE_SIDE], 3, padding=1)
        self.conv_body_up = nn.ModuleList(ResampleBlock(widths[side // 2], widths[side], 2.0) for side in sides)
        self.toRGB = nn.ModuleList(nn.Conv2d(widths[side], out_channels, 1) for side in sides)  # unused, see above
        self.final_linear = nn.Linear(widths[BASE_SIDE] * BASE_SIDE**2, style_dim)
        self.stylegan_decoder = StyleDecoder(image_size, out_channels, style_dim, mlp_layers, decoder_widths)
        self.condition_scale = nn.ModuleList(_condition(widths[side], decoder_widths[side]) for side in sides)
        self.condition_shift = nn.ModuleList(_condition(widths[side], decoder_widths[side]) for side in sides)

    def forward(self, features: Tensor, noise: NoiseMode = "fixed", generator: torch.Generator | None = None) -> Tensor:
        """``features`` [B, in_channels, S, S] -> RGB [B, out_channels, S, S] in [0, 1].

        ``noise``: ``"fixed"`` uses the stored noise maps (deterministic); ``"random"`` draws
        fresh ones from ``generator`` (the default generator when None), as the release does.
        """
        expected = (self.in_channels, self.image_size, self.image_size)
        if features.ndim != 4 or tuple(features.shape[1:]) != expected:
            raise ValueError(f"refiner input must be [B, {', '.join(map(str, expected))}], got {list(features.shape)}")
        # Channels-last maps with the in-place updates: 0.77 s instead of 1.0-1.1 s per 512 x 512
        # forward on 2 CPU cores (measured; either alone gains little). Same values within 1e-5.
        # Always a copy with the layout's own strides: a splatted [H, W, C] image viewed as
        # [1, C, H, W] is channels-last already but with a batch stride of C, which sends the
        # convolutions down a slower path (1.1 s instead of 0.85 s, measured).
        features = torch.empty_like(features, memory_format=torch.channels_last).copy_(features)
        x = F.leaky_relu_(self.conv_body_first(features), NEGATIVE_SLOPE)
        skips = []
        for block in self.conv_body_down:
            x = block(x)
            skips.append(x)
        x = F.leaky_relu_(self.final_conv(x), NEGATIVE_SLOPE)
        code = self.final_linear(x.flatten(1))
        conditions = []
        for block, scale, shift in zip(self.conv_body_up, self.condition_scale, self.condition_shift):
            x = block(x + skips.pop())
            conditions.append((scale(x), shift(x)))
        noises = self.stylegan_decoder.noise_maps(noise, features.shape[0], generator)
        return torch.sigmoid(self.stylegan_decoder(code, conditions, noises)).contiguous()
