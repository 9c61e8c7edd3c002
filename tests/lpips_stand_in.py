"""A stand-in LPIPS weights file: the real one is a user's file (a test helper)."""

from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch

from core.evaluation.lpips_network import LpipsNetwork


def write_stand_in_lpips(path: Path, trunk: str = "alex") -> Path:
    """Save a seeded, randomly initialised :class:`LpipsNetwork`'s state dict to ``path`` (.safetensors)."""
    torch.manual_seed(0)
    network = LpipsNetwork(trunk)
    for index in range(5):  # the learned channel weights are non-negative
        getattr(network, f"lin{index}").model[1].weight.data.abs_()
    safetensors.torch.save_file(network.state_dict(), str(path))
    return path
