"""A stand-in for an exported LPIPS program (the real one is a user's file; a test helper)."""

from __future__ import annotations

from pathlib import Path

import torch


class FeatureDistance(torch.nn.Module):
    """The squared difference of a fixed conv's features of (a, b) [1, 3, H, W] in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, a, b):
        return ((self.conv(a) - self.conv(b)) ** 2).mean()


def write_stand_in_lpips(path: Path, size: int) -> Path:
    """Export a seeded :class:`FeatureDistance` for ``size`` x ``size`` images to ``path`` (.pt2)."""
    torch.manual_seed(0)
    example = (torch.rand(1, 3, size, size), torch.rand(1, 3, size, size))
    torch.export.save(torch.export.export(FeatureDistance().eval(), example), str(path))
    return path
