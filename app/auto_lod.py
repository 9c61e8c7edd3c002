"""Auto-LOD: pick the finest level of detail whose frame time fits a target frame rate.

The controller learns each level's frame time while it is shown (an exponential moving
average) and moves one level at a time, with hysteresis so it does not flicker:

* down when the current level has been slower than the target for ``patience_s``;
* up when the next level's known cost fits the budget with ``headroom`` to spare, or, if
  that level has not been measured recently, when the current one has room for the
  extra Gaussians at the current cost per Gaussian.

Costs older than ``memory_s`` are forgotten (the machine's load changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Weight of a new frame time in the moving average.
SMOOTHING = 0.1


@dataclass
class _Cost:
    ms: float
    updated_s: float


class AutoLod:
    """Feed it the time each frame took; it answers with the level to show next."""

    def __init__(
        self,
        gaussian_counts: Sequence[int],
        target_fps: float = 30.0,
        headroom: float = 0.8,
        patience_s: float = 0.75,
        memory_s: float = 10.0,
    ):
        self.gaussian_counts = list(gaussian_counts)
        self.target_fps = target_fps
        self.headroom = headroom
        self.patience_s = patience_s
        self.memory_s = memory_s
        self._costs: dict[int, _Cost] = {}
        self._slow_since: float | None = None
        self._changed_at = 0.0

    @property
    def budget_ms(self) -> float:
        return 1000.0 / self.target_fps

    def update(self, lod: int, frame_ms: float, now_s: float) -> int:
        """Record that a frame at ``lod`` took ``frame_ms``; return the level for the next frame."""
        cost = self._costs.get(lod)
        if cost is None or now_s - cost.updated_s > self.memory_s:
            self._costs[lod] = cost = _Cost(frame_ms, now_s)
        else:
            cost.ms += SMOOTHING * (frame_ms - cost.ms)
            cost.updated_s = now_s
        if now_s - self._changed_at < self.patience_s:
            return lod  # let the new level settle before judging it
        if cost.ms > self.budget_ms:
            self._slow_since = now_s if self._slow_since is None else self._slow_since
            if lod > 0 and now_s - self._slow_since >= self.patience_s:
                return self._change(lod - 1, now_s)
            return lod
        self._slow_since = None
        if lod + 1 < len(self.gaussian_counts) and self._predicted_ms(lod + 1, cost, now_s) < self.headroom * self.budget_ms:
            return self._change(lod + 1, now_s)
        return lod

    def _predicted_ms(self, lod: int, current: _Cost, now_s: float) -> float:
        known = self._costs.get(lod)
        if known is not None and now_s - known.updated_s <= self.memory_s:
            return known.ms
        return current.ms * self.gaussian_counts[lod] / self.gaussian_counts[lod - 1]

    def _change(self, lod: int, now_s: float) -> int:
        self._changed_at = now_s
        self._slow_since = None
        return lod
