"""Reading weights files a user gives, without running code, and reporting how they differ
from a model: shared by the DINOv2 backbone, network checkpoints and the LPIPS metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
from torch import Tensor

from core.errors import ModelFileError, first_line
from core.torch_files import read_weights_only

REPORTED_KEYS = 8  # names listed per kind of mismatch; the rest are counted


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A ``.safetensors`` file, or a ``.pth`` / ``.bin`` read without running pickled code
    (:func:`core.torch_files.read_weights_only`): anything else in it is a
    :class:`ModelFileError`, nothing executes."""
    if path.suffix != ".safetensors":
        state = read_weights_only(path)
    else:
        try:
            return safetensors.torch.load_file(path)
        except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "not readable"
            raise ModelFileError(f"{path.name}: not a readable weights file ({first_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(value, Tensor) for value in state.values()):
        raise ModelFileError(f"{path.name}: holds a {type(state).__name__} of other things, expected a state dict")
    return state


@dataclass(frozen=True)
class KeyDifferences:
    """How a state dict differs from an expected one, key by key.

    Attributes:
        missing: expected keys the given dict lacks, in expected order.
        unexpected: given keys not expected, in given order.
        mismatched: (key, given shape, expected shape) of keys in both with other shapes.
    """

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)


def _shape(value: Tensor | Sequence[int]) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, Tensor) else tuple(value)


def key_differences(expected: Mapping[str, Tensor | Sequence[int]], given: Mapping[str, Tensor]) -> KeyDifferences:
    """The missing, unexpected and mis-shaped keys of ``given`` against ``expected`` (whose
    values are tensors or shapes)."""
    return KeyDifferences(
        missing=[key for key in expected if key not in given],
        unexpected=[key for key in given if key not in expected],
        mismatched=[
            (key, tuple(given[key].shape), _shape(expected[key]))
            for key in expected
            if key in given and tuple(given[key].shape) != _shape(expected[key])
        ],
    )


def mismatch_report(expected: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> list[str]:
    """Readable lines on how ``given`` differs from ``expected``: missing, unexpected and
    mis-shaped keys, each kind counted and its first names listed; empty when all match."""
    differences = key_differences(expected, given)
    mis_shaped = [f"{key}: file {list(shape)}, model {list(wanted)}" for key, shape, wanted in differences.mismatched]
    lines = []
    for kind, items in (("missing", differences.missing), ("unexpected", differences.unexpected),
                        ("mis-shaped", mis_shaped)):  # fmt: skip
        if items:
            lines.append(f"  {len(items)} {kind} key(s):")
            lines += [f"    {item}" for item in items[:REPORTED_KEYS]]
            if len(items) > REPORTED_KEYS:
                lines.append(f"    ... and {len(items) - REPORTED_KEYS} more")
    return lines
