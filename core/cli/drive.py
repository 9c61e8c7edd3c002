"""``omg-avatar drive``: render an avatar driven by a video or a webcam, optionally to MP4.

Per frame: decode, track (face mesh, head pose, and for an avatar with a FLAME rig a
FLAME fit when a FLAME file is at hand), animate (driving state -> Gaussians), render
(the avatar's feature channels, then its neural refiner when it has one and
``--no-refiner`` is not given), encode. The stages run as a pipeline on two threads
joined by a bounded queue: a tracking thread decodes and tracks frame k+1 while the main
thread animates, renders and encodes frame k, so throughput is set by the slower side,
not by the sum of all stages. (Encoding an MP4 frame costs about a millisecond: it stays
on the main thread.)

A video is processed frame by frame, every frame (the output has as many frames as the
input). A webcam is read by a :class:`~core.tracking.sources.CaptureThread` that keeps
only the newest frame, so a slow renderer drops camera frames instead of lagging; there
the ``decode`` stage is the wait for the next camera frame.

The end of a video or a vanished webcam ends the run cleanly with its summary. The MP4
is written to a temporary file and renamed when complete; an error or an interrupt
(Ctrl-C) removes it, so no partial video is ever left behind (stop a webcam recording
with ``--max-frames``).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.avatar import Animator, load_avatar
from core.avatar.animation import attach_flame, flame_fitting
from core.avatar.view import View
from core.config import load_config
from core.errors import InputImageError, NoFaceError
from core.flame import find_flame_file
from core.media import AtomicMp4Writer
from core.progress import ProgressClock
from core.render import resolve_backend
from core.render.renderer import BACKENDS
from core.tracking.sources import CaptureThread, Frame, SourceEvent, VideoFileSource, WebcamSource
from core.tracking.tracker import TrackedFrame, Tracker

#: Timed stages, in pipeline order.
STAGES = ("decode", "track", "animate", "render", "encode")
#: Tracked frames that may wait for the renderer (two keep both threads busy).
TRACKED_QUEUE_SIZE = 2
#: Seconds between progress lines on stderr.
PROGRESS_INTERVAL_S = 2.0
#: Frame rate of the MP4 made from a webcam (its frames have no fixed rate).
WEBCAM_OUTPUT_FPS = 25.0
#: Longest wait for a webcam frame before the tracking thread checks whether to stop, seconds.
WEBCAM_WAIT_S = 0.1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drive",
        help="render an avatar driven by a video or a webcam",
        description="Drive AVATAR with the face in a video or a webcam and render every frame "
        "(optionally to an MP4); prints frames, FPS and milliseconds per stage.",
    )
    parser.add_argument("avatar", metavar="AVATAR.omg", help="avatar file made by 'omg-avatar reconstruct'")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="V", help="driving video file")
    source.add_argument("--webcam", metavar="N", type=non_negative_int, help="driving webcam index")
    parser.add_argument("-o", "--output", metavar="OUT.mp4", help="write the rendered frames to this MP4")
    parser.add_argument("--lod", type=non_negative_int, default=1, help="level of detail (default %(default)s: Sub#1)")
    parser.add_argument("--yaw", type=float, default=0.0, metavar="DEG",
                        help="view from this many degrees to the subject's left of the source view")
    parser.add_argument("--pitch", type=float, default=0.0, metavar="DEG",
                        help="view from this many degrees above the source view")
    parser.add_argument("--renderer", choices=BACKENDS, default="auto", help="rendering backend (default %(default)s)")
    parser.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    parser.add_argument("--config", default="paper", help="config name in assets/configs, or a YAML file")
    parser.add_argument("--flame", metavar="FILE",
                        help="FLAME model file for the expressions of a network avatar (default: the config's, "
                        "used when present; without one the avatar keeps its source expression)")
    parser.add_argument("--no-refiner", action="store_true",
                        help="show a network avatar's coarse RGB (its first 3 feature channels), not the refiner's")
    parser.set_defaults(run=run)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


@dataclass
class DriveStats:
    """Totals of one run: frames, milliseconds per stage, and the pipeline's wall time."""

    frames: int = 0
    tracked: int = 0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def ms_per_frame(self) -> dict[str, float]:
        return {stage: ms / max(self.frames, 1) for stage, ms in self.stage_ms.items()}

    def add(self, item: TrackedItem, animate_s: float, render_s: float, encode_s: float) -> None:
        """Count one driven frame and its stage times."""
        self.frames += 1
        self.tracked += item.tracked.tracked
        for stage, ms in zip(STAGES, (item.decode_ms, item.track_ms, _ms(animate_s), _ms(render_s), _ms(encode_s))):
            self.stage_ms[stage] += ms


@dataclass(frozen=True)
class TrackedItem:
    """A tracked frame and what decoding and tracking it cost (milliseconds)."""

    tracked: TrackedFrame
    decode_ms: float
    track_ms: float


class TrackingWorker:
    """Decodes and tracks frames on a thread, ahead of the renderer.

    ``read`` returns the next frame, the event that ends the source, or None when no frame
    came in time. Tracked frames wait in a queue of :data:`TRACKED_QUEUE_SIZE`; :meth:`get`
    returns them in order, then the final :class:`SourceEvent`, and re-raises anything the
    thread raised.
    """

    def __init__(self, read: Callable[[], Frame | SourceEvent | None], tracker: Tracker, max_frames: int | None):
        self._read = read
        self._tracker = tracker
        self._max_frames = max_frames
        self._queue: queue.Queue[TrackedItem | SourceEvent | BaseException] = queue.Queue(TRACKED_QUEUE_SIZE)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracking", daemon=True)

    def __enter__(self) -> TrackingWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        self._thread.join()

    def get(self) -> TrackedItem | SourceEvent:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _run(self) -> None:
        try:
            count = 0
            while self._max_frames is None or count < self._max_frames:
                started = time.perf_counter()
                frame = self._read()
                decoded = time.perf_counter()
                if frame is None:
                    if self._stopping.is_set():
                        return
                    continue
                if isinstance(frame, SourceEvent):
                    self._put(frame)
                    return
                tracked = self._tracker.track(frame)
                tracked_at = time.perf_counter()
                count += 1
                if not self._put(TrackedItem(tracked, _ms(decoded - started), _ms(tracked_at - decoded))):
                    return
            self._put(SourceEvent.ENDED)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self._put(exc)

    def _put(self, item: TrackedItem | SourceEvent | BaseException) -> bool:
        """Queue ``item``, waiting for room; False if asked to stop meanwhile."""
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


@dataclass(frozen=True)
class DrivingInput:
    """An opened driving source: its name, its frame rate, and ``read``, which returns the
    next frame, the event that ended the source, or None when no frame came in time."""

    name: str
    read: Callable[[], Frame | SourceEvent | None]
    fps: float


@contextlib.contextmanager
def open_driving_input(video: str | None, webcam: int | None) -> Iterator[DrivingInput]:
    """A video file read frame by frame, or a webcam read through a newest-frame capture thread."""
    if video is not None:
        with VideoFileSource(video) as source:
            yield DrivingInput(source.name, source.read, source.fps)
        return
    capture = CaptureThread(WebcamSource(webcam), max_queued=1)
    with capture:  # the thread closes the camera when it ends
        yield DrivingInput(capture.source.name, lambda: capture.get(WEBCAM_WAIT_S), WEBCAM_OUTPUT_FPS)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    backend = resolve_backend(args.renderer)
    avatar = attach_flame(load_avatar(args.avatar), find_flame_file(args.flame, config.flame), config)
    fitting = flame_fitting(avatar, config)
    view = View(avatar, args.lod, avatar.camera(args.yaw, args.pitch), backend, use_refiner=not args.no_refiner)
    view.image(view.gaussians())  # checks the LOD; compiles or loads the render kernels before timing
    stats = DriveStats()
    with open_driving_input(args.video, args.webcam) as driving, Tracker.from_config(config) as tracker:
        size = view.camera.width, view.camera.height
        writer = AtomicMp4Writer(args.output, driving.fps, *size) if args.output else None
        try:
            event = _drive(driving, tracker, Animator(avatar, fitting=fitting), view, writer, args.max_frames, stats)
            if stats.frames == 0:
                raise InputImageError(f"{driving.name} has no frames")
            if stats.tracked == 0:
                raise NoFaceError(driving.name)
        except BaseException:
            if writer:
                writer.discard()
            raise
        if writer:
            writer.commit()
    _print_summary(args, driving.name, event, stats, view, fitting is not None)
    return 0


def _drive(
    driving: DrivingInput,
    tracker: Tracker,
    animator: Animator,
    view: View,
    writer: AtomicMp4Writer | None,
    max_frames: int | None,
    stats: DriveStats,
) -> SourceEvent:
    """Run the pipeline until the input ends; fills ``stats``; returns the ending event."""
    progress = ProgressClock(PROGRESS_INTERVAL_S)
    started = time.perf_counter()
    with TrackingWorker(driving.read, tracker, max_frames) as worker:
        while not isinstance(item := worker.get(), SourceEvent):
            clock = time.perf_counter()
            gaussians = view.gaussians(animator.drive(item.tracked))
            animated = time.perf_counter()
            image = view.image(gaussians)
            rendered = time.perf_counter()
            if writer:
                writer.write(image)
            encoded = time.perf_counter()
            stats.add(item, animated - clock, rendered - animated, encoded - rendered)
            if progress.due():
                stats.wall_s = time.perf_counter() - started
                print(f"  drove {stats.frames} frames, {stats.fps:.1f} FPS", file=sys.stderr, flush=True)
    stats.wall_s = time.perf_counter() - started
    return item


def _print_summary(
    args: argparse.Namespace, name: str, event: SourceEvent, stats: DriveStats, view: View, fitted: bool
) -> None:
    ending = {
        SourceEvent.ENDED: "the video ended" if args.max_frames is None or stats.frames < args.max_frames
        else f"--max-frames {args.max_frames} reached",
        SourceEvent.DISCONNECTED: f"{name} disconnected",
        SourceEvent.FAILED: f"reading {name} failed",
    }[event]
    stages = ", ".join(f"{stage} {ms:.1f}" for stage, ms in stats.ms_per_frame().items())
    print(f"input:            {name} ({ending})")
    gaussians = f"{view.avatar.num_gaussians(view.lod)} Gaussians"
    print(f"avatar:           {Path(args.avatar).name}, LOD {view.lod} ({gaussians}), renderer {view.backend}")
    if view.avatar.flame is not None:
        expressions = "FLAME fit per frame" if fitted else "the source's (no FLAME file)"
        refiner = "on" if view.use_refiner and view.avatar.refiner is not None else "off (coarse RGB)"
        print(f"network avatar:   expressions {expressions}, refiner {refiner}")
    if args.output:
        print(f"output:           {args.output} ({stats.frames} frames)")
    print(f"frames:           {stats.frames} ({stats.tracked} with a face)")
    print(f"FPS:              {stats.fps:.1f} end to end ({1000.0 / max(stats.fps, 1e-9):.1f} ms per frame, "
          f"pipelined)")  # fmt: skip
    print(f"ms per frame:     {stages}")


def _ms(seconds: float) -> float:
    return 1000.0 * seconds
