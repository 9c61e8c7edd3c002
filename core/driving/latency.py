"""Capture-to-display latency of a stamped live stream, measured rather than guessed.

A stamped stream's frames carry their index and send time in a corner code
(:mod:`core.driving.frame_code`); a :class:`~core.driving.live.LiveCamera` with ``stamped``
gives them to the frame, and they travel with it through tracking, animation and rendering.
Whoever shows the frame (``omg-avatar drive`` once it is rendered and written, the app once
the window showing it is drawn) tells a :class:`LatencyMeter`, which works out:

* the latency of every frame shown, send to display (median, 95th percentile, and the median
  per :data:`WINDOW_S` seconds, which would grow if stale frames queued up somewhere);
* the frames dropped: indices the stream sent between the first and last frames shown that
  never were (the camera thread keeps only the newest frame; the renderer takes the newest
  driven one);
* the end-to-end rate: frames shown per second;
* the same per group (:meth:`LatencyMeter.summary_by_group`): the app tells each frame's level
  of detail, so that a run that visits other levels still reports each level's own figures.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

import numpy as np

from core.driving.frame_code import INDEX_BITS

#: Seconds per window of the per-window medians.
WINDOW_S = 10.0


class LatencyMeter:
    """Collects the frames shown (see the module docstring); not thread-safe: one caller."""

    def __init__(self):
        self._latencies_ms: list[float] = []
        self._shown_s: list[float] = []  # wall clock at each display
        self._groups: list[Hashable] = []
        self._first_index: int | None = None
        self._last_index: int | None = None  # unwrapped

    def shown(self, index: int, sent_s: float, now_s: float | None = None, group: Hashable = None) -> None:
        """Frame ``index`` (as coded, modulo 2 ** INDEX_BITS), sent at ``sent_s`` (wall clock),
        is on display at ``now_s`` (default now), counted in ``group``. A frame shown again, or
        one older than a frame already shown, is not counted."""
        now_s = time.time() if now_s is None else now_s
        if self._last_index is None:
            self._first_index = self._last_index = index
        else:
            step = (index - self._last_index) % (1 << INDEX_BITS)
            if step == 0 or step >= 1 << (INDEX_BITS - 1):
                return  # the same frame again, or an older one
            self._last_index += step
        self._latencies_ms.append(1000.0 * (now_s - sent_s))
        self._shown_s.append(now_s)
        self._groups.append(group)

    @property
    def frames(self) -> int:
        return len(self._latencies_ms)

    def summary(self) -> dict:
        """``frames_shown``, ``frames_dropped``, ``end_to_end_fps``, ``latency_ms_median``,
        ``latency_ms_p95``, ``latency_ms_max`` and ``latency_ms_median_per_window`` (one median
        per WINDOW_S seconds, ``window_s``); zeros and an empty list before two frames."""
        latencies, shown = np.asarray(self._latencies_ms), np.asarray(self._shown_s)
        if len(latencies) < 2:
            return {"frames_shown": len(latencies), "frames_dropped": 0, "end_to_end_fps": 0.0,
                    "latency_ms_median": 0.0, "latency_ms_p95": 0.0, "latency_ms_max": 0.0,
                    "latency_ms_median_per_window": [], "window_s": WINDOW_S}  # fmt: skip
        span_s = shown[-1] - shown[0]
        windows = ((shown - shown[0]) // WINDOW_S).astype(int)
        return {
            "frames_shown": len(latencies),
            "frames_dropped": int(self._last_index - self._first_index + 1 - len(latencies)),
            "end_to_end_fps": round((len(latencies) - 1) / span_s, 2) if span_s > 0 else 0.0,
            **_spread(latencies),
            "latency_ms_median_per_window": [round(float(np.median(latencies[windows == w])), 1)
                                             for w in range(windows[-1] + 1) if np.any(windows == w)],
            "window_s": WINDOW_S,
        }  # fmt: skip

    def summary_by_group(self) -> dict[Hashable, dict]:
        """Per group given to :meth:`shown`: ``frames_shown``, ``end_to_end_fps`` (the group's
        frames over the time charged to them: each display's interval since the one before
        is charged to the frame it shows), ``latency_ms_median``, ``latency_ms_p95`` and
        ``latency_ms_max``."""
        latencies, groups = np.asarray(self._latencies_ms), self._groups
        intervals = np.diff(np.asarray(self._shown_s), prepend=np.nan)  # the first display has none
        figures = {}
        for group in dict.fromkeys(groups):  # in the order first shown
            mine = np.array([g == group for g in groups])
            timed = mine & ~np.isnan(intervals)
            seconds = float(intervals[timed].sum())
            figures[group] = {
                "frames_shown": int(mine.sum()),
                "end_to_end_fps": round(int(timed.sum()) / seconds, 2) if seconds > 0 else 0.0,
                **_spread(latencies[mine]),
            }
        return figures


def _spread(latencies_ms: np.ndarray) -> dict:
    """``latency_ms_median``, ``latency_ms_p95`` and ``latency_ms_max`` of [N >= 1] latencies."""
    return {
        "latency_ms_median": round(float(np.median(latencies_ms)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies_ms, 95)), 1),
        "latency_ms_max": round(float(latencies_ms.max()), 1),
    }
