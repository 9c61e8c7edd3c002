"""``omg-avatar track``: track every frame of a video, image, image folder or webcam.

Per frame: MediaPipe face mesh and head pose, always; a FLAME fit when a FLAME file is
configured (shape calibrated once on the first tracked frames, then expression, jaw,
eyes and pose per frame, warm-started). Prints a summary; ``--json`` writes it with at
least the keys ``frames``, ``tracked_fraction`` and ``ms_per_frame`` (tracking time per
frame, decoding excluded), and ``smoothing``: what the configured landmark smoothing does
to the raw landmarks, per channel (:mod:`core.tracking.lag`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import Config, load_config
from core.errors import NoFaceError
from core.fileio import check_output_path, write_json_atomic
from core.flame import FlameParams, find_flame_file, load_flame_layer
from core.paths import resolve_model_file
from core.progress import ProgressClock
from core.tracking.flame_tracking import CalibratedFitting
from core.tracking.lag import measure
from core.tracking.photo import portrait_from_image, read_image
from core.tracking.sources import IMAGE_SUFFIXES, Frame, FrameSource, open_source
from core.tracking.tracker import STAGES, Tracker

#: Seconds between progress lines on stderr.
PROGRESS_INTERVAL_S = 2.0
#: Fewest consecutive tracked frames the smoothing is measured on (a second at 30 fps).
MIN_MEASURED_FRAMES = 30
#: Most frames of a run kept for that measurement (a minute at 30 fps: bounded memory).
MAX_MEASURED_FRAMES = 1800

SMOOTHING_HELP = """The JSON's "smoothing" entry measures the configured landmark smoothing against
the raw landmarks on the longest run of consecutive tracked frames (at least 30;
null otherwise): "frames", and per channel ("pose": head motion, "eyelids": lid gaps,
"lips": lip gap and mouth width, "irises": irises relative to the eye corners, "rest":
every other point) "lag_frames" (delay of the smoothed motion, fast motion weighing most),
"amplitude_kept" (fraction of blinks, mouth openings and other large excursions kept;
null without any), "events" (their number), "jitter_ratio" (smoothed over raw jitter on
the stillest frames: 0.5 is halved) and "fast_error_px" (RMS smoothed minus raw on the
fastest frames, pixels of the crop)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="track a face through a video, image, image folder or webcam",
        description="Track every frame (MediaPipe face mesh and head pose, plus a FLAME fit when "
        "a FLAME file is configured) and print a summary.",
        epilog=SMOOTHING_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="video file, image, image folder, a webcam index (0, 1, ...) or a stream URL")
    parser.add_argument(
        "--json", metavar="FILE", help="also write the summary to FILE as JSON (with the smoothing's lag, see below)"
    )
    parser.add_argument("--config", default="paper", help="config name in assets/configs, or a YAML file")
    parser.add_argument(
        "--flame", metavar="FILE", help="FLAME model file (default: the config's, used when present)"
    )
    parser.add_argument("--no-flame", action="store_true", help="skip the FLAME fit even when a file exists")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (needed for webcams)")
    parser.set_defaults(run=run)


class SmoothingRecorder:
    """Raw and smoothed landmarks [N, 3] (crop pixels) of the longest run of consecutive
    tracked frames so far, each run cut at :data:`MAX_MEASURED_FRAMES`."""

    def __init__(self):
        self._run: list[tuple[np.ndarray, np.ndarray]] = []
        self._longest: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, raw: np.ndarray | None, smoothed: np.ndarray | None, restarted: bool) -> None:
        """One frame's landmarks; None (no face) ends the run, ``restarted`` (the smoothing
        started over on another person) begins a new one."""
        if restarted or raw is None or smoothed is None:
            self._run = []
        if raw is None or smoothed is None:
            return
        if len(self._run) < MAX_MEASURED_FRAMES:
            self._run.append((raw.astype(np.float32), smoothed.astype(np.float32)))
        if len(self._run) > len(self._longest):
            self._longest = self._run

    def report(self) -> dict | None:
        """``frames`` and per-channel ``channels`` (:func:`core.tracking.lag.measure`) of the
        longest run; None when it is shorter than :data:`MIN_MEASURED_FRAMES`."""
        if len(self._longest) < MIN_MEASURED_FRAMES:
            return None
        raw, smoothed = (np.stack(column) for column in zip(*self._longest))
        return {"frames": len(self._longest), "channels": measure(raw, smoothed)}


@dataclass
class TrackStats:
    """Running totals of one tracking run."""

    frames: int = 0
    tracked: int = 0
    track_ms: float = 0.0
    decode_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    fits: list[FlameParams] = field(default_factory=list)
    fit_ms: float = 0.0
    smoothing: SmoothingRecorder = field(default_factory=SmoothingRecorder)

    def summary(self, source: str, flame_file: Path | None) -> dict:
        frames = max(self.frames, 1)
        result = {
            "input": source,
            "frames": self.frames,
            "tracked_frames": self.tracked,
            "tracked_fraction": self.tracked / frames,
            "ms_per_frame": self.track_ms / frames,
            "decode_ms_per_frame": self.decode_ms / frames,
            "stage_ms_per_frame": {stage: ms / frames for stage, ms in self.stage_ms.items()},
            "flame_file": str(flame_file) if flame_file else None,
            "smoothing": self.smoothing.report(),
        }
        if self.fits:
            result["flame_fitted_frames"] = len(self.fits)
            result["flame_fit_ms_per_frame"] = self.fit_ms / len(self.fits)
            result["flame_fit_residual_px"] = float(np.mean([fit.residual_px for fit in self.fits]))
        return result


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output_path(args.json, (args.input,))
    config = load_config(args.config)
    flame_file = None if args.no_flame else find_flame_file(args.flame, config.flame)
    fitting = _fitting(config, flame_file) if flame_file else None
    stats, progress = TrackStats(), ProgressClock(PROGRESS_INTERVAL_S)
    with Tracker.from_config(config) as tracker:
        for frame, decode_ms in _timed_frames(args.input, config, args.max_frames):
            tracked = tracker.track(frame)
            stats.frames += 1
            stats.decode_ms += decode_ms
            stats.track_ms += tracked.total_ms
            for stage, ms in tracked.stage_ms.items():
                stats.stage_ms[stage] += ms
            stats.smoothing.add(tracked.raw_landmarks, tracked.landmarks, tracked.switched)
            if tracked.tracked:
                stats.tracked += 1
                if fitting:
                    _fit(fitting, tracked.landmarks, stats)
            if progress.due():
                print(f"  tracked {stats.tracked}/{stats.frames} frames", file=sys.stderr, flush=True)
    if fitting:
        _fit(fitting, None, stats)
    if stats.tracked == 0:
        raise NoFaceError(Path(args.input).name)
    summary = stats.summary(args.input, flame_file)
    _print_summary(summary, flame_file, config)
    if args.json:
        write_json_atomic(args.json, summary)
    return 0


def _fitting(config: Config, flame_file: Path) -> CalibratedFitting:
    layer = load_flame_layer(flame_file, config.flame)
    return CalibratedFitting.from_config(layer, config, config.tracking.crop.output_size)


def _fit(fitting: CalibratedFitting, landmarks: np.ndarray | None, stats: TrackStats) -> None:
    """Fit one frame's landmarks (``None``: flush the calibration frames) into ``stats``."""
    started = time.perf_counter()
    fits = fitting.finish() if landmarks is None else fitting.add(landmarks)
    stats.fit_ms += 1000.0 * (time.perf_counter() - started)
    stats.fits.extend(fits)


def _timed_frames(spec: str, config: Config, max_frames: int | None) -> Iterator[tuple[Frame, float]]:
    """The input's frames with the milliseconds each took to read.

    A still image gets the photo checks first (a human face of at least the minimum size),
    so a bad photo fails with the same error as it would when reconstructing from it.
    """
    path = Path(spec)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        started = time.perf_counter()
        rgb = read_image(path)
        decode_ms = 1000.0 * (time.perf_counter() - started)
        portrait_from_image(rgb, path.name, config.tracking)
        yield Frame(rgb, 0, 0.0), decode_ms
        return
    source: FrameSource = open_source(spec)
    with source:
        count = 0
        while max_frames is None or count < max_frames:
            started = time.perf_counter()
            frame = source.read()
            if not isinstance(frame, Frame):
                return
            count += 1
            yield frame, 1000.0 * (time.perf_counter() - started)


def _print_summary(summary: dict, flame_file: Path | None, config: Config) -> None:
    stages = ", ".join(f"{stage} {ms:.2f}" for stage, ms in summary["stage_ms_per_frame"].items())
    print(f"input:            {summary['input']}")
    print(f"frames:           {summary['frames']}")
    print(f"tracked:          {summary['tracked_frames']} ({100 * summary['tracked_fraction']:.1f}%)")
    print(f"ms per frame:     {summary['ms_per_frame']:.2f} tracking ({stages}); "
          f"{summary['decode_ms_per_frame']:.2f} decoding")  # fmt: skip
    if "flame_fit_residual_px" in summary:
        print(f"FLAME fit:        {summary['flame_fit_ms_per_frame']:.2f} ms per frame, "
              f"residual {summary['flame_fit_residual_px']:.2f} px RMS ({flame_file.name})")  # fmt: skip
    elif flame_file is None:
        expected = resolve_model_file(config.flame.model_file)
        print(f"FLAME fit:        off (no FLAME file at {expected}; see README, 'Requirements')")
    if summary["smoothing"]:
        channels = ", ".join(f"{name} {values['lag_frames']:.2f}/{_percent(values['amplitude_kept'])}/"
                             f"{values['jitter_ratio']:.2f}" for name, values in summary["smoothing"]["channels"].items())  # fmt: skip
        print(f"smoothing:        lag frames/amplitude kept/jitter ratio: {channels}")


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"
