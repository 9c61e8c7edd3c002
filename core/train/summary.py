"""A run's headline numbers, kept across resumes (the ``--json`` of ``omg-avatar train``).

* ``loss_first``, ``loss_last``: the loss of the run's first and latest step;
* ``loss_first_mean``, ``loss_last_mean``: the mean loss of the first and the latest
  :data:`LOSS_WINDOW` steps (fewer in a shorter run): one step of a small batch is a noisy
  reading, these are not;
* ``val_psnr_first``, ``val_psnr_last``: validation PSNR (dB, level 0) at step 0 and at the
  latest validation.
"""

from __future__ import annotations

from collections import deque
from typing import Any

#: Steps averaged into ``loss_first_mean`` and ``loss_last_mean``.
LOSS_WINDOW = 10
KEYS = ("loss_first", "loss_last", "loss_first_mean", "loss_last_mean", "val_psnr_first", "val_psnr_last")


class RunSummary:
    """Fed every step's loss and every validation's PSNR; :meth:`values` gives :data:`KEYS`."""

    def __init__(self) -> None:
        self._first: list[float] = []
        self._latest: deque[float] = deque(maxlen=LOSS_WINDOW)
        self._psnr: list[float] = []  # the first and the latest

    def add_loss(self, loss: float) -> None:
        if len(self._first) < LOSS_WINDOW:
            self._first.append(loss)
        self._latest.append(loss)

    def add_validation(self, psnr: float) -> None:
        self._psnr = [self._psnr[0], psnr] if self._psnr else [psnr]

    def values(self) -> dict[str, float | None]:
        """:data:`KEYS` -> value (None before the first step or validation)."""
        first, latest = self._first, list(self._latest)
        return {
            "loss_first": first[0] if first else None,
            "loss_last": latest[-1] if latest else None,
            "loss_first_mean": sum(first) / len(first) if first else None,
            "loss_last_mean": sum(latest) / len(latest) if latest else None,
            "val_psnr_first": self._psnr[0] if self._psnr else None,
            "val_psnr_last": self._psnr[-1] if self._psnr else None,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"first": list(self._first), "latest": list(self._latest), "psnr": list(self._psnr)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._first = [float(x) for x in state["first"]]
        self._latest = deque((float(x) for x in state["latest"]), maxlen=LOSS_WINDOW)
        self._psnr = [float(x) for x in state["psnr"]]
