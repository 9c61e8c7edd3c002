"""The figures the viewer shows: frame rates and smoothed milliseconds."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from core.driving import CameraStatus

#: Seconds over which frame rates are counted, and refined frames (which may come less than once a second).
RATE_WINDOW_S = 1.0
REFINED_RATE_WINDOW_S = 10.0
#: Weight of a new sample in the moving averages of milliseconds.
MS_SMOOTHING = 0.1


@dataclass(frozen=True)
class Figures:
    """The overlay's figures (``tracker_ms`` is None when nothing is tracked; ``backend`` is
    the renderer of the newest frame; ``compiling``: the cpu renderer still compiles;
    ``refining``: frames are refined on the refiner worker; ``refine_ms`` and ``refined_fps``:
    its milliseconds per refined frame (None before the first) and refined frames per second;
    ``camera``: how the live camera that drives is doing, None without one)."""

    render_fps: float
    end_to_end_fps: float
    tracker_ms: float | None
    gaussians: int
    lod: int
    backend: str
    compiling: bool = False
    refining: bool = False
    refine_ms: float | None = None
    refined_fps: float = 0.0
    camera: CameraStatus | None = None


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.perf_counter() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-6)


def smoothed(average: float | None, sample: float) -> float:
    """Exponential moving average (the first sample starts it)."""
    return sample if average is None else average + MS_SMOOTHING * (sample - average)
