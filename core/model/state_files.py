"""Reading weights files a user gives, without running code, and reporting how they differ
from a model: shared by the DINOv2 backbone, network checkpoints and the LPIPS metric."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import safetensors.torch
import torch
from torch import Tensor

from core.errors import ModelFileError, first_line

REPORTED_KEYS = 8  # names listed per kind of mismatch; the rest are counted


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A ``.safetensors`` file, or a ``.pth`` / ``.bin`` read without running pickled code
    (``weights_only``): anything else in it is a :class:`ModelFileError`, nothing executes."""
    try:
        if path.suffix == ".safetensors":
            return safetensors.torch.load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "not readable"
        raise ModelFileError(f"{path.name}: not a readable weights file ({first_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(value, Tensor) for value in state.values()):
        raise ModelFileError(f"{path.name}: holds a {type(state).__name__} of other things, expected a state dict")
    return state


def mismatch_report(expected: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> list[str]:
    """Readable lines on how ``given`` differs from ``expected``: missing, unexpected and
    mis-shaped keys, each kind counted and its first names listed; empty when all match."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    mis_shaped = [
        f"{key}: file {list(given[key].shape)}, model {list(expected[key].shape)}"
        for key in expected
        if key in given and given[key].shape != expected[key].shape
    ]
    lines = []
    for kind, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)):
        if items:
            lines.append(f"  {len(items)} {kind} key(s):")
            lines += [f"    {item}" for item in items[:REPORTED_KEYS]]
            if len(items) > REPORTED_KEYS:
                lines.append(f"    ... and {len(items) - REPORTED_KEYS} more")
    return lines
