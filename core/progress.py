"""When a long-running command should print its next progress line."""

from __future__ import annotations

import time


class ProgressClock:
    """``due()`` is true once every ``interval_s`` seconds (first after one interval)."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._next = time.monotonic() + interval_s

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval_s
        return True
