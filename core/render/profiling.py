"""Wall-clock time per rendering stage (projection, sorting, blending) for the benchmark."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

STAGES = ("projection", "sorting", "blending")


class StageTimer:
    """Accumulates seconds per stage name over any number of renders."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def shares(self) -> dict[str, float]:
        """Fraction of the timed total spent in each stage."""
        total = sum(self.seconds.values())
        return {name: (seconds / total if total > 0 else 0.0) for name, seconds in self.seconds.items()}


def stage(timer: StageTimer | None, name: str) -> ContextManager[None]:
    """``timer.stage(name)``, or a no-op when there is no timer."""
    return timer.stage(name) if timer is not None else nullcontext()
