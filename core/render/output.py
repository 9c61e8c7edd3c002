"""What every backend returns, and the background argument they all accept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

#: A background: one value for every channel, or one value per channel ([C]).
Background = float | Sequence[float] | torch.Tensor


@dataclass(frozen=True)
class RenderOutput:
    """One rendered view.

    Attributes:
        features: [H, W, C] composited features over the background.
        alpha: [H, W] accumulated opacity, ``1 - transmittance``.
        depth: [H, W] expected camera-space depth ``sum(w z) / alpha`` (0 where alpha is 0),
            gsplat's "ED".
    """

    features: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def background_tensor(
    background: Background, num_channels: int, dtype: torch.dtype, device: torch.device | str
) -> torch.Tensor:
    """``background`` as a [C] tensor; raises ``ValueError`` when its length is not 1 or C."""
    value = torch.as_tensor(background, dtype=dtype, device=device).reshape(-1)
    if value.numel() == 1:
        return value.expand(num_channels).clone()
    if value.numel() != num_channels:
        raise ValueError(f"background has {value.numel()} values for {num_channels} channels")
    return value
