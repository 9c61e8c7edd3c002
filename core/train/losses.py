"""The paper's training loss, differentiable.

    loss = sum over image in (coarse, refined) of
               l2 * MSE(image, target) + ssim * (1 - SSIM(image, target)) + perceptual * P(image, target)
           + offset * mean over batch and vertices of ||offset||^2

with the weights of :class:`~core.config.LossConfig` (the paper: 10, 1, 0.1, 0.1). Every
term is a mean over the batch, so a distributed run's average over processes equals one
process's loss over the global batch. SSIM is Wang et al.'s as :func:`core.evaluation.metrics.ssim`
computes it (11 x 11 Gaussian window, sigma 1.5, population covariance, valid region only),
written with ``conv2d``. The perceptual term P is LPIPS (:mod:`core.evaluation.lpips_network`) with the weights of the
configured file; without the file the term is off, with one printed warning, never replaced
by random weights.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.config import LossConfig
from core.evaluation.lpips_network import LpipsNetwork
from core.evaluation.metrics import LPIPS_HOW_TO, Lpips, load_lpips
from core.paths import resolve_model_file

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K1 L)^2, (K2 L)^2 with a data range L of 1
PARTS = ("l2", "ssim", "perceptual", "offset")


def ssim(image: Tensor, target: Tensor) -> Tensor:
    """[B] mean SSIM of [B, C, H, W] images in [0, 1] (H, W >= 11), averaged over channels."""
    channels = image.shape[1]
    offsets = torch.arange(SSIM_WINDOW, dtype=image.dtype, device=image.device) - (SSIM_WINDOW - 1) / 2
    line = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    line = line / line.sum()
    window = (line[:, None] * line[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=channels)

    mean_x, mean_y = blur(image), blur(target)
    var_x = blur(image * image) - mean_x**2
    var_y = blur(target * target) - mean_y**2
    cov = blur(image * target) - mean_x * mean_y
    numerator = (2 * mean_x * mean_y + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mean_x**2 + mean_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (numerator / denominator).mean(dim=(1, 2, 3))


class PerceptualLoss(nn.Module):
    """[B] LPIPS distances of [B, 3, H, W] images in [0, 1] (sides at least the trunk's
    :data:`~core.evaluation.lpips_network.MIN_SIDE`); weights frozen, gradients flow to the images."""

    def __init__(self, network: LpipsNetwork) -> None:
        super().__init__()
        self.network = network.requires_grad_(False)

    def forward(self, image: Tensor, target: Tensor) -> Tensor:
        return self.network(image * 2 - 1, target * 2 - 1)


def load_perceptual(weights: str, warn: bool = True) -> Lpips | None:
    """The LPIPS of the perceptual term (and of validation's LPIPS) with the weights file
    ``weights`` (``TrainingConfig.perceptual_weights``, relative to the models folder or absolute),
    or None when it is "" or absent, with a printed warning when ``warn`` (a distributed run's rank 0)."""
    path = resolve_model_file(weights) if weights else None
    if path is None or not path.is_file():
        if not warn:
            return None
        where = f"no LPIPS weights at {path}" if path else "no training.perceptual_weights configured"
        print(f"omg-avatar: warning: perceptual loss off: {where} ({LPIPS_HOW_TO})", file=sys.stderr)
        return None
    return load_lpips(path)


class ReconstructionLoss(nn.Module):
    """The loss of the module docstring; ``perceptual`` None turns that term off."""

    def __init__(self, weights: LossConfig, perceptual: PerceptualLoss | None) -> None:
        super().__init__()
        self.weights = weights
        self.perceptual = perceptual

    def forward(
        self, coarse: Tensor, refined: Tensor, target: Tensor, offsets: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Args: coarse, refined, target [B, 3, H, W] in [0, 1]; offsets [B, V, 3] (metres).

        Returns the total (a scalar) and the weighted parts by name (:data:`PARTS`), which sum to it.
        """
        w = self.weights
        zero = target.new_zeros(())
        parts = dict.fromkeys(PARTS, zero)
        for image in (coarse, refined):
            parts["l2"] = parts["l2"] + w.l2 * F.mse_loss(image, target)
            parts["ssim"] = parts["ssim"] + w.ssim * (1 - ssim(image, target)).mean()
            if self.perceptual is not None:
                parts["perceptual"] = parts["perceptual"] + w.perceptual * self.perceptual(image, target).mean()
        # The released network's learned FLAME template offsets are in metres (added before FLAME's
        # x5 scale), the earlier network's were world units: with the same weight, this term now
        # pulls 25 times less for the same movement of the avatar.
        parts["offset"] = w.offset * offsets.pow(2).sum(dim=-1).mean()
        return sum(parts.values(), zero), parts
