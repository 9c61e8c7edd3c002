"""DPT decoder: four ViT token grids to one local-feature plane (Ranftl et al., "Vision
Transformers for Dense Prediction"), sized as in GAGAvatar, whose design the paper follows.

Reassemble: each grid [D, h, h] is projected by a 1x1 conv and resampled to its own scale
(x4, x2, x1, x0.5: 4h, 2h, h, ceil(h / 2)), then a 3x3 conv brings it to ``feature_dim``.
Fusion, coarse to fine: each block adds the coarser result to its residual-refined map,
refines again and upsamples to the next finer map; the finest block upsamples to the plane
(x2 of the 4h map when ``plane_size`` = 8h: 37 tokens -> 148 -> 296 at the paper's sizes).
Head: a 3x3 conv on the plane.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from core.model.encoder import ResidualConvUnit

SCALES = (4, 2, 1, 0.5)  # resampling of the four grids, shallow to deep
WIDTH_FACTORS = (1, 2, 4, 4)  # reassembled channels per grid, times feature_dim (256: 256, 512, 1024, 1024)


class DptDecoder(nn.Module):
    def __init__(self, in_dim: int, feature_dim: int, plane_size: int):
        """in_dim: ViT embed dim D; feature_dim: channels of the plane; plane_size: its side."""
        super().__init__()
        self.plane_size = plane_size
        self.reassemble = nn.ModuleList(
            _reassemble(in_dim, factor * feature_dim, feature_dim, scale)
            for factor, scale in zip(WIDTH_FACTORS, SCALES)
        )
        self.fusion = nn.ModuleList(FusionBlock(feature_dim) for _ in SCALES)  # coarse to fine
        self.head = nn.Conv2d(feature_dim, feature_dim, kernel_size=3, padding=1)

    def forward(self, layers: list[Tensor]) -> Tensor:
        """layers: 4 x [B, in_dim, h, h], shallow to deep. Returns [B, feature_dim, plane_size, plane_size]."""
        maps = [stage(layer) for stage, layer in zip(self.reassemble, layers)]  # 4h, 2h, h, ceil(h/2)
        coarse_to_fine = maps[::-1]
        targets = [tuple(finer.shape[-2:]) for finer in coarse_to_fine[1:]] + [(self.plane_size, self.plane_size)]
        fused = None
        for block, skip, size in zip(self.fusion, coarse_to_fine, targets):
            fused = block(skip, fused, size)
        return self.head(fused)


class FusionBlock(nn.Module):
    """One step of DPT's fusion: refine the skip map, add the coarser result, refine, upsample."""

    def __init__(self, channels: int):
        super().__init__()
        self.refine_skip = ResidualConvUnit(channels)
        self.refine_sum = ResidualConvUnit(channels)
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, skip: Tensor, coarser: Tensor | None, size: tuple[int, int]) -> Tensor:
        """skip: [B, C, H, W]; coarser: [B, C, H, W] or None (the coarsest step). Returns [B, C, *size]."""
        fused = self.refine_skip(skip)
        if coarser is not None:
            fused = fused + coarser
        fused = F.interpolate(self.refine_sum(fused), size=size, mode="bilinear", align_corners=True)
        return self.out_conv(fused)


def _reassemble(in_dim: int, width: int, out_dim: int, scale: float) -> nn.Sequential:
    """[B, in_dim, h, h] -> [B, out_dim, s, s], s = h * scale (rounded up at 0.5)."""
    return nn.Sequential(
        nn.Conv2d(in_dim, width, kernel_size=1),
        _resample(width, scale),
        nn.Conv2d(width, out_dim, kernel_size=3, padding=1, bias=False),
    )


def _resample(channels: int, scale: float) -> nn.Module:
    if scale > 1:
        return nn.ConvTranspose2d(channels, channels, kernel_size=int(scale), stride=int(scale))
    if scale < 1:
        return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
    return nn.Identity()
