"""The style refiner's decoder (:mod:`core.model.style_refiner`): a StyleGAN2-like generator
whose maps are steered per pixel by scale and shift maps ("conditions").

From a learned 4x4 constant, each resolution r = 8, 16, ..., S upsamples the map (bilinear x2)
through a modulated 3x3 conv, multiplies it by r's scale map and adds r's shift map (these
carry the picture's layout: the style vector alone knows nothing about where things are),
then applies a second modulated 3x3 conv; a modulated 1x1 conv per resolution turns the map
into RGB, added to the RGB of the resolution below upsampled. Every modulated conv is steered
by the same style vector ``w`` (the style code through an MLP), and every 3x3 conv gets a
noise map times a learned strength: the stored maps (``"fixed"``: the same image for the
same input, what a live view needs) or fresh standard-normal draws (``"random"``: what the
release does at inference).

Attribute names are the release's (its ``stylegan_decoder.*`` keys), so its weights load.

Activations are updated in place wherever autograd allows it (a conv's or a product's backward
does not need its own output), which saves passes over maps of up to 64 x 512 x 512 values: see
:mod:`core.model.style_refiner` for the measured effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Slope of every LeakyReLU of the refiner.
NEGATIVE_SLOPE = 0.2
#: Side of the learned constant the decoder starts from (and of the encoder's last map).
BASE_SIDE = 4
#: Keeps the style normalisation and the demodulation away from a division by zero.
EPS = 1e-8
#: Gain after each modulated 3x3 conv (StyleGAN2's: the LeakyReLU halves the variance).
CONV_GAIN = math.sqrt(2.0)

NoiseMode = Literal["fixed", "random"]


def resolutions(image_size: int) -> list[int]:
    """The sides above the base, 8, 16, ..., ``image_size`` (a power of two >= 8)."""
    if image_size < 2 * BASE_SIDE or image_size & (image_size - 1):
        raise ValueError(f"the refiner's image size must be a power of two >= {2 * BASE_SIDE}, got {image_size}")
    return [2**k for k in range(BASE_SIDE.bit_length(), image_size.bit_length())]


def resample(x: Tensor, factor: float) -> Tensor:
    """[B, C, H, W] -> [B, C, H * factor, W * factor], bilinear (pixel-centre aligned)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class StyleNorm(nn.Module):
    """[B, D] -> [B, D] scaled to a unit root mean square per row."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + EPS)


class ModulatedConv(nn.Module):
    """A conv whose input channels are scaled per sample by an affine map of ``w``, optionally
    demodulated (each output channel divided by the norm of its modulated weights, so that it
    keeps unit variance whatever the style). [B, C_in, H, W] and w [B, D] -> [B, C_out, H', W'],
    H' = 2H when ``upsample`` (bilinear, before the conv), else H.

    The activations are modulated, not the weights: conv(x * s) * d is the conv with weights
    W * s * d, for the whole batch in one ordinary conv.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, demodulate: bool, upsample: bool
    ) -> None:
        super().__init__()
        # [1, C_out, C_in, k, k]: the release's layout of the shared weights.
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(fan_in)
        )
        self.modulation = nn.Linear(style_dim, in_channels)
        nn.init.normal_(self.modulation.weight, std=1.0 / math.sqrt(style_dim))
        nn.init.ones_(self.modulation.bias)  # every channel starts unmodulated
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        weight = self.weight[0]
        scales = self.modulation(w)  # [B, C_in]
        x = x * scales[:, :, None, None]
        if self.upsample:
            x = resample(x, 2.0)
        out = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            norms = scales.square() @ weight.square().sum(dim=(2, 3)).T  # [B, C_out]
            out = out * torch.rsqrt(norms + EPS)[:, :, None, None]
        return out


class StyleConv(nn.Module):
    """Modulated, demodulated 3x3 conv, plus noise times a learned strength, plus a bias, then a
    LeakyReLU. [B, C_in, H, W], w [B, D], noise [B or 1, 1, H', W'] -> [B, C_out, H', W']
    (H' = 2H when ``upsample``)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv(in_channels, out_channels, 3, style_dim, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # the noise strength (the release's name)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor, w: Tensor, noise: Tensor) -> Tensor:
        out = self.modulated_conv(x, w).mul_(CONV_GAIN).add_(self.weight * noise).add_(self.bias)
        return F.leaky_relu_(out, NEGATIVE_SLOPE)


class ToRgb(nn.Module):
    """Modulated 1x1 conv (not demodulated) plus a bias, added to the RGB of the resolution
    below upsampled. [B, C, H, W], w [B, D], below [B, 3, H/2, W/2] or None -> [B, 3, H, W]."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv(in_channels, out_channels, 1, style_dim, demodulate=False, upsample=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor, w: Tensor, below: Tensor | None = None) -> Tensor:
        rgb = self.modulated_conv(x, w).add_(self.bias)
        return rgb if below is None else rgb.add_(resample(below, 2.0))


class LearnedConstant(nn.Module):
    """batch size B -> the learned map [B, C, side, side]."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, side, side))

    def forward(self, batch: int) -> Tensor:
        return self.weight.expand(batch, -1, -1, -1)


def _style_mlp(style_dim: int, layers: int) -> nn.Sequential:
    """StyleNorm, then ``layers`` x (Linear, LeakyReLU): [B, D] -> w [B, D]."""
    modules: list[nn.Module] = [StyleNorm()]
    for _ in range(layers):
        linear = nn.Linear(style_dim, style_dim)
        nn.init.kaiming_normal_(linear.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
        nn.init.zeros_(linear.bias)
        modules += [linear, nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)]
    return nn.Sequential(*modules)


class StyleDecoder(nn.Module):
    """Style code [B, D] and per resolution r = 8, ..., S a (scale, shift) pair of
    [B, widths[r], r, r] -> image [B, out_channels, S, S] (unbounded).

    Args:
        image_size: S, a power of two >= 8.
        out_channels: channels of the image.
        style_dim: D, width of the style code and of the MLP.
        mlp_layers: linear layers of the style MLP.
        widths: channels per side, for the sides 4, 8, ..., S.
    """

    def __init__(
        self, image_size: int, out_channels: int, style_dim: int, mlp_layers: int, widths: Mapping[int, int]
    ) -> None:
        super().__init__()
        sides = resolutions(image_size)
        self.style_mlp = _style_mlp(style_dim, mlp_layers)
        self.constant_input = LearnedConstant(widths[BASE_SIDE], BASE_SIDE)
        self.style_conv1 = StyleConv(widths[BASE_SIDE], widths[BASE_SIDE], style_dim)
        self.to_rgb1 = ToRgb(widths[BASE_SIDE], out_channels, style_dim)
        # Per side: the upsampling conv, then the conv after the conditions.
        self.style_convs = nn.ModuleList()
        for below, side in zip([BASE_SIDE, *sides], sides):
            self.style_convs.append(StyleConv(widths[below], widths[side], style_dim, upsample=True))
            self.style_convs.append(StyleConv(widths[side], widths[side], style_dim))
        self.to_rgbs = nn.ModuleList(ToRgb(widths[side], out_channels, style_dim) for side in sides)
        # The stored noise maps, one per StyleConv in forward order: [1, 1, r, r].
        self.noises = nn.Module()
        noise_sides = [BASE_SIDE] + [side for side in sides for _ in range(2)]
        for index, side in enumerate(noise_sides):
            self.noises.register_buffer(f"noise{index}", torch.randn(1, 1, side, side))

    def noise_maps(self, mode: NoiseMode, batch: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """One noise map per StyleConv, in forward order: the stored [1, 1, r, r] maps
        (``"fixed"``), or fresh standard-normal [B, 1, r, r] maps (``"random"``) drawn in that
        order from ``generator`` (the default generator when None, as the release draws them)."""
        stored = list(self.noises.buffers())
        if mode == "fixed":
            return stored
        if mode != "random":
            raise ValueError(f"noise must be 'fixed' or 'random', got {mode!r}")
        device = stored[0].device if generator is None else generator.device
        return [
            torch.randn((batch, 1, *map_.shape[2:]), generator=generator, device=device).to(stored[0].device)
            for map_ in stored
        ]

    def forward(self, code: Tensor, conditions: Sequence[tuple[Tensor, Tensor]], noises: Sequence[Tensor]) -> Tensor:
        w = self.style_mlp(code)
        noise = iter(noises)
        x = self.style_conv1(self.constant_input(code.shape[0]), w, next(noise))
        rgb = self.to_rgb1(x, w)
        pairs = zip(self.style_convs[::2], self.style_convs[1::2], self.to_rgbs, conditions)
        for upsampling, conv, to_rgb, (scale, shift) in pairs:
            x = torch.addcmul(shift, upsampling(x, w, next(noise)), scale)
            x = conv(x, w, next(noise))
            rgb = to_rgb(x, w, rgb)
        return rgb
