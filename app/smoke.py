"""The smoke run: the real window for N avatar frames with a script that switches the level
of detail and orbits, a screenshot of the whole window, and the frame rates as JSON.

The video is paced by the viewer (the driver tracks the next frame while the current one
is rendered, and never drops one), so the end-to-end rate is what the pipeline sustains.
Frame rates are accounted per level of detail: each shown frame's interval is charged to
the level it showed. The top-level ``render_fps`` and ``end_to_end_fps`` are those of the
requested level.

Driven by a stamped live stream (``--webcam URL`` of ``omg-avatar loopback-camera``), the run
also measures the capture-to-display latency after the warm-up: each driven frame's corner
code (index and send time) travels with it to the window, which tells the latency meter once
it has drawn it, with the level of detail on screen. The JSON then has ``latency_ms_median``,
``latency_ms_p95`` and ``driven_fps`` (driven frames on screen per second) of the requested
level, the same in each level's ``per_lod`` entry, ``frames_dropped`` over the whole run, and
the meter's whole-run summary under ``latency``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.application import App
from app.main import AppOptions, start
from core.errors import OmgError
from core.session import LatencyMeter, write_json_atomic

#: Fractions of the run at which the script acts: (start, action).
LOD_EXCURSION = (0.35, 0.5)  # the other levels are shown in this part of the run
ORBIT = (0.6, 0.9)  # the camera orbits out in this part's first half and back in its second
ORBIT_PIXELS_PER_FRAME = (2.5, 0.5)
#: Frames shown before the figures start counting (kernels load, caches fill), at most.
WARMUP_FRAMES = 20
#: Seconds to wait for the avatar before giving up, and for the screenshot file.
AVATAR_TIMEOUT_S = 120.0
SCREENSHOT_TIMEOUT_S = 10.0


@dataclass
class _LodTotals:
    frames: int = 0
    seconds: float = 0.0
    render_ms: float = 0.0


@dataclass
class SmokeScript:
    """Called before every frame; drives the app through the run and collects figures."""

    frames: int
    lod: int
    totals: dict[int, _LodTotals] = field(default_factory=lambda: defaultdict(_LodTotals))
    _last_shown: float | None = None
    _shown_before: int = 0

    @property
    def warmup(self) -> int:
        """Frames not counted at the start (the first one starts the clock in any case)."""
        return min(WARMUP_FRAMES, self.frames // 10)

    def __call__(self, app: App) -> None:
        now = time.perf_counter()
        if app.avatar_frames > self._shown_before:  # the previous step showed a new frame
            if self._last_shown is not None and app.avatar_frames > self.warmup:
                totals = self.totals[app.shown_lod]
                totals.frames += 1
                totals.seconds += now - self._last_shown
                totals.render_ms += app.session.last_render_ms
            self._last_shown, self._shown_before = now, app.avatar_frames
        progress = self.counted / self.frames
        levels = len(app.session.lod_counts) or 1
        lod = self.lod
        if LOD_EXCURSION[0] <= progress < LOD_EXCURSION[1] and levels > 1:
            others = [level for level in range(levels) if level != self.lod]
            step = (progress - LOD_EXCURSION[0]) / (LOD_EXCURSION[1] - LOD_EXCURSION[0])
            lod = others[min(int(step * len(others)), len(others) - 1)]
        if lod != app.view.lod:
            app.view.lod = lod
            app.invalidate()
        if ORBIT[0] <= progress < ORBIT[1]:
            direction = 1.0 if progress < (ORBIT[0] + ORBIT[1]) / 2 else -1.0
            app.camera.orbit(*(direction * pixels for pixels in ORBIT_PIXELS_PER_FRAME))
            app.invalidate()

    @property
    def counted(self) -> int:
        """Frames counted so far (the first avatar frame starts the clock and is not counted)."""
        return sum(totals.frames for totals in self.totals.values())

    @property
    def done(self) -> bool:
        return self.counted >= self.frames

    def summary(self) -> dict:
        per_lod = {
            f"sub{lod}": {
                "frames": totals.frames,
                "render_fps": 1000.0 * totals.frames / totals.render_ms if totals.render_ms else 0.0,
                "end_to_end_fps": totals.frames / totals.seconds if totals.seconds else 0.0,
            }
            for lod, totals in sorted(self.totals.items())
        }
        main = per_lod.get(f"sub{self.lod}", {"render_fps": 0.0, "end_to_end_fps": 0.0})
        return {
            "frames": self.counted,
            "render_fps": round(main["render_fps"], 2),
            "end_to_end_fps": round(main["end_to_end_fps"], 2),
            "lod": self.lod,
            "per_lod": {key: {k: round(v, 2) for k, v in value.items()} for key, value in per_lod.items()},
        }


def run(options: AppOptions, frames: int, screenshot: Path | None, json_path: Path | None) -> int:
    """Run the smoke script; print one JSON line; 0 on success."""
    script = SmokeScript(frames, options.lod)
    live = isinstance(options.webcam, str)  # a stream URL: measure its latency
    app = start(options, paced_by_consumer=True, stamped=live)
    try:
        deadline = time.perf_counter() + AVATAR_TIMEOUT_S
        while not script.done:
            if not dpg.is_dearpygui_running():
                raise OmgError("the window was closed before the smoke run finished")
            if app.session.avatar is None and time.perf_counter() > deadline:
                raise OmgError(f"no avatar after {AVATAR_TIMEOUT_S:.0f} s")
            if app.dialogs.shown:
                raise OmgError("; ".join(f"{title}: {message}" for title, message in app.dialogs.shown))
            if live and app.latency is None and app.avatar_frames > script.warmup:
                app.latency = LatencyMeter()
            script(app)
            app.step()
        if screenshot is not None:
            _save_window(app, screenshot)
        figures = app.session.figures(options.lod)
        result = {
            **script.summary(),
            "backend": figures.backend,
            "tracker_ms": round(figures.tracker_ms, 2) if figures.tracker_ms is not None else None,
            "first_avatar_frame_s": round(app.first_avatar_frame_s or 0.0, 2),
            "window_frames": app.frames,
            "screenshot": str(screenshot) if screenshot else None,
            "view_image": list(app.viewport.image_rect()),  # where the screenshot shows the avatar
        }
        if app.latency is not None:
            result.update(_latency_figures(app.latency, options.lod, result["per_lod"]))
    finally:
        app.close()
    print(json.dumps(result), flush=True)
    if json_path is not None:
        write_json_atomic(json_path, result)
    return 0


def _latency_figures(meter: LatencyMeter, lod: int, per_lod: dict[str, dict]) -> dict:
    """The smoke JSON's latency keys (see the module docstring); adds each level's to ``per_lod``."""
    latency = meter.summary()
    for level, figures in meter.summary_by_group().items():
        per_lod.setdefault(f"sub{level}", {}).update(
            latency_ms_median=figures["latency_ms_median"], latency_ms_p95=figures["latency_ms_p95"],
            driven_fps=figures["end_to_end_fps"])  # fmt: skip
    main = per_lod.get(f"sub{lod}", {})
    return {"latency_ms_median": main.get("latency_ms_median", 0.0), "latency_ms_p95": main.get("latency_ms_p95", 0.0),
            "frames_dropped": latency["frames_dropped"], "driven_fps": main.get("driven_fps", 0.0),
            "latency": latency}  # fmt: skip


def _save_window(app: App, path: Path) -> None:
    """Save the whole window as it is on screen (Dear PyGui writes it after the next frame)."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    dpg.output_frame_buffer(file=str(path))
    deadline = time.perf_counter() + SCREENSHOT_TIMEOUT_S
    while not (path.is_file() and path.stat().st_size > 0):
        if time.perf_counter() > deadline:
            raise OmgError(f"the window screenshot {path} was not written")
        app.step()
    print(f"screenshot: {path}", file=sys.stderr)
