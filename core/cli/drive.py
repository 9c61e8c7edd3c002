"""``omg-avatar drive``: render an avatar driven by a video, a webcam or a driver folder of the
OMG-Avatar release, optionally to MP4.

The per-frame path (:mod:`core.driving`): read a frame, track it (face mesh, head pose,
and for an avatar with a FLAME rig a FLAME fit when a FLAME file is at hand), animate
(driving state), render (:func:`core.avatar.view.render_view`: pose the Gaussians, splat
them, then the avatar's neural refiner when it has one and ``--no-refiner`` is not given),
encode. By default the stages run as a pipeline on two threads: a driving thread reads,
tracks and animates frame k+1 while the main thread renders and encodes frame k, so
throughput is set by the slower side, not by the sum of all stages (``--synchronous``
runs every stage on one thread, one frame after the other).

A video is processed frame by frame, every frame (the output has as many frames as the
input). A live camera (``--webcam``: a webcam number, or a stream URL such as a phone
camera app's ``http://.../video`` or ``rtsp://...``) keeps only its newest frame, so a slow
renderer drops camera frames instead of lagging; there the ``decode`` stage is the wait for
the next camera frame. A camera that stops delivering is reconnected (one line on stderr
when it stops and one when it is back) for up to ``--reconnect`` seconds.

``--latency-json`` measures a stamped stream's capture-to-display latency (the loopback
camera's, ``omg-avatar loopback-camera``): each frame's corner code gives its index and send
time, which travel with it through tracking, animation and rendering
(:mod:`core.driving.latency`); a frame counts as displayed once it is rendered (and written).

A driver folder (``--driver``, :mod:`core.driving.release_driver`) was tracked by the release:
its frames carry FLAME codes and a camera, so nothing is tracked (no MediaPipe, no FLAME fit)
and its frames are stepped in order on this thread (:mod:`core.driving.release_states`): the
head turns as the driver's did before the avatar's camera, or, with ``--driver-camera``, each
frame is rendered through its own camera as the release does. The MP4 is written at the
driving video's rate as the folder's preview ``tracked.mp4`` gives it, else at 25 FPS, the rate
of the release's own videos (:func:`~core.driving.release_driver.driver_fps`).

The end of a video or a camera that did not come back ends the run cleanly with its summary. The MP4
is written to a temporary file and renamed when complete; an error or an interrupt
(Ctrl-C) removes it, so no partial video is ever left behind (stop a webcam recording
with ``--max-frames``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.arguments import camera_spec, non_negative_int, positive_int
from core.avatar import Avatar, DrivingState, load_avatar
from core.avatar.animation import REFERENCE_FRAMES, attach_flame
from core.avatar.view import View, render_view
from core.config import Config, load_config
from core.driving import STAGES as DRIVING_STAGES
from core.driving import (
    Delivery,
    DrivenFrame,
    DrivingEvent,
    DrivingInput,
    DrivingPipeline,
    DrivingThread,
    LiveCamera,
    VideoPlayback,
    drive_input,
)
from core.driving.latency import LatencyMeter
from core.driving.release_driver import DEFAULT_FPS, ReleaseDriver, driver_fps, load_release_driver
from core.driving.release_states import release_camera, release_state
from core.driving.worker import driving_event
from core.errors import InputImageError, NoFaceError, OmgError
from core.fileio import check_output_path, write_json_atomic
from core.flame import find_flame_file
from core.geometry.camera import Camera
from core.media import AtomicMp4Writer, rgb8
from core.progress import ProgressClock
from core.render import resolve_backend, set_cpu_render_threads
from core.render.benchmark import machine_description
from core.render.renderer import BACKENDS
from core.tracking.sources import SourceEvent

#: Timed stages, in pipeline order.
STAGES = (*DRIVING_STAGES, "render", "encode")
#: Seconds between progress lines on stderr.
PROGRESS_INTERVAL_S = 2.0
#: Seconds a live camera that stopped is reconnected for before the run ends, by default.
RECONNECT_S = 10.0
#: Background colours ``--background`` knows by name (RGB in 0..1).
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "green": (0.0, 1.0, 0.0)}


class DriveOptionError(OmgError):
    """Options that do not go together."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drive",
        help="render an avatar driven by a video, a webcam or a release driver folder",
        description="Drive AVATAR with the face in a video or a webcam, or with the tracked frames of a "
        "driver folder of the OMG-Avatar release, and render every frame (optionally to an MP4); prints "
        "frames, FPS and milliseconds per stage.",
    )
    parser.add_argument("avatar", metavar="AVATAR.omg", help="avatar file made by 'omg-avatar reconstruct'")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="V", help="driving video file")
    source.add_argument("--webcam", metavar="N|URL", type=camera_spec,
                        help="driving webcam number, or a network stream's URL (a phone camera app's "
                        "http://HOST:PORT/video, rtsp://..., the loopback camera's)")
    source.add_argument("--driver", metavar="FOLDER",
                        help="driver folder tracked by the OMG-Avatar release (smoothed.pkl, else optim.pkl): its "
                        "FLAME codes and head pose per frame, in order; the MP4 runs at the driving video's rate "
                        f"(from the folder's tracked.mp4), else at {DEFAULT_FPS:.0f} FPS like the release's videos")
    parser.add_argument("-o", "--output", metavar="OUT.mp4", help="write the rendered frames to this MP4")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the summary to FILE as JSON: input, frames, tracked_frames, lod, gaussians, "
                             "renderer, mode, fps, ms_per_frame (per stage) and machine")  # fmt: skip
    parser.add_argument("--latency-json", metavar="FILE",
                        help="with --webcam and a stamped stream (omg-avatar loopback-camera): write the "
                        "capture-to-display latency to FILE as JSON: latency_ms_median, latency_ms_p95, "
                        "frames_dropped, end_to_end_fps and more")
    parser.add_argument("--reconnect", type=float, default=RECONNECT_S, metavar="S",
                        help="with --webcam: reconnect a camera that stops delivering for up to S seconds "
                        "before ending the run (default %(default)g)")
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
    parser.add_argument("--background", type=background_colour, default="black", metavar="COLOUR",
                        help="background: black, white, green or R,G,B in 0..1 (default black)")
    parser.add_argument("--reference-frames", type=positive_int, default=REFERENCE_FRAMES, metavar="N",
                        help="the driver's first N faces, averaged, are its neutral face (default %(default)s)")
    parser.add_argument("--driver-camera", action="store_true",
                        help="with --driver: render each frame through the frame's own camera, as the release "
                        "does (the whole bust turns with the head), instead of turning the head before the "
                        "avatar's camera")
    parser.add_argument("--synchronous", action="store_true",
                        help="run every stage on one thread, one frame after the other (default: tracking "
                        "runs one frame ahead of rendering on a thread of its own)")
    parser.set_defaults(run=run)


def background_colour(text: str) -> tuple[float, float, float]:
    if text.lower() in BACKGROUNDS:
        return BACKGROUNDS[text.lower()]
    try:
        rgb = tuple(float(part) for part in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= value <= 1.0 for value in rgb):
        raise argparse.ArgumentTypeError(f"expected {', '.join(BACKGROUNDS)} or R,G,B in 0..1, got {text}")
    return rgb


@dataclass(frozen=True)
class Shown:
    """One frame to render.

    Attributes:
        state: the avatar's driving state (None: neutral, before the first face).
        face: whether a face drove it.
        stage_ms: milliseconds per stage of the driving stages (``decode``, ``track``, ``animate``).
        camera: the camera to render through; None: the view's.
        index, captured_s: the frame's index and timestamp in its source (for a stamped live
            camera: its corner code's index and send time); None for a driver folder's frames.
    """

    state: DrivingState | None
    face: bool
    stage_ms: dict[str, float]
    camera: Camera | None = None
    index: int | None = None
    captured_s: float | None = None


@dataclass
class DriveStats:
    """Totals of one run: frames, milliseconds per stage, and the run's wall time."""

    frames: int = 0
    tracked: int = 0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def ms_per_frame(self) -> dict[str, float]:
        return {stage: ms / max(self.frames, 1) for stage, ms in self.stage_ms.items()}

    def add(self, shown: Shown, render_ms: float, encode_ms: float) -> None:
        """Count one driven frame and its stage times."""
        self.frames += 1
        self.tracked += shown.face
        for stage, ms in (*shown.stage_ms.items(), ("render", render_ms), ("encode", encode_ms)):
            self.stage_ms[stage] += ms


@dataclass(frozen=True)
class Driving:
    """Where a run's frames come from: its name, the MP4's rate, the frames (a generator that
    returns the event that ended them), what drives expressions, and what a run's ending says."""

    name: str
    fps: float
    frames: Generator[Shown, None, SourceEvent]
    expressions: str
    ended: str


def open_input(
    video: str | None, webcam: int | str | None, stamped: bool = False, reconnect_s: float | None = None
) -> DrivingInput:
    """A video file read every frame in order, or a live camera (a webcam number or a stream
    URL) read for its newest frame, reconnected for up to ``reconnect_s`` seconds when it
    stops; ``stamped``: its frames carry the corner code (:mod:`core.driving.frame_code`)."""
    if video is not None:
        return VideoPlayback(video)
    return LiveCamera(webcam, stamped=stamped, give_up_after_s=reconnect_s)


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    for output in (args.output, args.json, args.latency_json):
        if output:
            check_output_path(output, (args.avatar, args.video))
    driver = load_release_driver(args.driver) if args.driver is not None else None  # a bad folder fails first
    config = load_config(args.config)
    backend = resolve_backend(args.renderer)
    flame_file = find_flame_file(args.flame, config.flame)
    avatar = attach_flame(load_avatar(args.avatar), flame_file, config)
    view = View(avatar.camera(args.yaw, args.pitch), args.lod, background=args.background,
                use_refiner=not args.no_refiner)  # fmt: skip
    render_view(avatar, view, None, backend)  # checks the LOD; compiles or loads the render kernels before timing
    if driver is not None:
        driving = _driver_folder(driver, avatar, view, flame_file is not None, args)
    else:
        driving = _tracked_input(args, config, avatar)
        if not args.synchronous:
            set_cpu_render_threads(1)  # the tracker runs beside the renderer: see set_cpu_render_threads
    stats = DriveStats()
    meter = LatencyMeter() if args.latency_json else None
    writer = AtomicMp4Writer(args.output, driving.fps, view.camera.width, view.camera.height) if args.output else None
    try:
        with contextlib.closing(driving.frames) as frames:
            event = _drive(frames, avatar, view, backend, writer, stats, meter)
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
    _print_summary(args, driving, event, stats, avatar, view, backend)
    summary = _summary(args, driving, stats, avatar, view, backend)
    if args.json:
        write_json_atomic(args.json, summary)
    if meter is not None:
        _report_latency(args.latency_json, meter, summary)
    return 0


def _report_latency(path: str, meter: LatencyMeter, summary: dict) -> None:
    """Print the latency line and write ``--latency-json``: the meter's figures and the run's."""
    latency = meter.summary()
    print(f"latency:          median {latency['latency_ms_median']:.0f} ms, p95 {latency['latency_ms_p95']:.0f} ms "
          f"(capture to rendered), {latency['frames_dropped']} frames dropped, "
          f"{latency['end_to_end_fps']:.1f} FPS shown")  # fmt: skip
    keep = ("input", "lod", "gaussians", "renderer", "mode", "ms_per_frame", "machine")
    write_json_atomic(path, {**latency, **{key: summary[key] for key in keep}})


def _summary(
    args: argparse.Namespace, driving: Driving, stats: DriveStats, avatar: Avatar, view: View, backend: str
) -> dict:
    """The run's figures for ``--json`` (what the printed summary says, as numbers)."""
    return {
        "input": driving.name,
        "frames": stats.frames,
        "tracked_frames": stats.tracked,
        "lod": view.lod,
        "gaussians": avatar.num_gaussians(view.lod),
        "renderer": backend,
        "mode": _mode(args),
        "fps": round(stats.fps, 2),
        "ms_per_frame": {stage: round(ms, 3) for stage, ms in stats.ms_per_frame().items()},
        "machine": machine_description(),
    }


def _mode(args: argparse.Namespace) -> str:
    """How reading, tracking and animating ran against rendering."""
    return "synchronous" if args.synchronous or args.driver is not None else "pipelined"


def _check_options(args: argparse.Namespace) -> None:
    """A DriveOptionError for options that do not go together."""
    if args.driver_camera and args.driver is None:
        raise DriveOptionError("--driver-camera needs --driver FOLDER")
    if args.latency_json and args.webcam is None:
        raise DriveOptionError("--latency-json measures a live camera: it needs --webcam N|URL")
    if args.driver_camera and (args.yaw or args.pitch):
        raise DriveOptionError("--driver-camera renders through the driver's cameras: --yaw and --pitch do not apply")


def _tracked_input(args: argparse.Namespace, config: Config, avatar: Avatar) -> Driving:
    """A video or a webcam through the tracking pipeline."""
    pipeline = DrivingPipeline(config, avatar, args.reference_frames)
    driving = open_input(args.video, args.webcam, stamped=bool(args.latency_json), reconnect_s=args.reconnect)
    expressions = "FLAME fit per frame" if pipeline.fits_flame else "the source's (no FLAME file)"
    frames = _shown(_driven_frames(driving, pipeline, args.max_frames, args.synchronous))
    return Driving(driving.name, driving.fps, frames, expressions, "the video ended")


def _driver_folder(
    driver: ReleaseDriver, avatar: Avatar, view: View, has_flame: bool, args: argparse.Namespace
) -> Driving:
    """A release driver folder's frames as states (and cameras, with ``--driver-camera``)."""
    name = f"{driver.file.parent.name}/{driver.file.name}"
    expressions = "the driver's FLAME codes" if has_flame else "the source's (no FLAME file)"
    frames = _driver_frames(driver, avatar, view.camera.width, has_flame, args.driver_camera, args.max_frames)
    return Driving(name, driver_fps(driver.file.parent), frames, expressions, f"all {len(driver)} driver frames driven")


def _driver_frames(
    driver: ReleaseDriver, avatar: Avatar, size: int, expressions: bool, driver_camera: bool, max_frames: int | None
) -> Generator[Shown, None, SourceEvent]:
    """The driver's frames in order, up to ``max_frames``: states, and their own cameras
    (``size`` pixels) when ``driver_camera``."""
    for frame in driver.frames[:max_frames]:
        started = time.perf_counter()
        state = release_state(frame, avatar, expressions, head_motion=not driver_camera, first=driver.frames[0])
        camera = release_camera(frame, size) if driver_camera else None
        stage_ms = {"decode": 0.0, "track": 0.0, "animate": _ms(time.perf_counter() - started)}
        yield Shown(state, True, stage_ms, camera)
    return SourceEvent.ENDED


def _shown(driven_frames: Generator[DrivenFrame, None, SourceEvent]) -> Generator[Shown, None, SourceEvent]:
    """Tracked frames as frames to render; returns their ending event."""
    with contextlib.closing(driven_frames):
        while True:
            try:
                driven = next(driven_frames)
            except StopIteration as end:
                return end.value
            tracked = driven.tracked
            yield Shown(driven.state, tracked.tracked, driven.stage_ms, index=tracked.index, captured_s=tracked.timestamp_s)


def _driven_frames(
    driving: DrivingInput, pipeline: DrivingPipeline, max_frames: int | None, synchronous: bool
) -> Generator[DrivenFrame, None, SourceEvent]:
    """The input's frames through the pipeline: on a thread one frame ahead of the renderer,
    or one after the other on this thread (``synchronous``). Returns the ending event. A live
    camera's driven frames are the newest only: one the renderer had no time for is dropped,
    never queued (a queue would add its length to the latency)."""
    if synchronous:
        def on_event(event: SourceEvent) -> None:
            _print_stall(driving_event(driving, event))

        with pipeline, contextlib.closing(driving):
            return (yield from drive_input(driving, pipeline, max_frames, on_event))
    if not isinstance(driving, LiveCamera):
        with DrivingThread(driving, pipeline, Delivery.ORDERED, max_frames, on_event=_print_stall) as thread:
            while (driven := thread.get()) is not None:
                yield driven
        return thread.final_event
    with DrivingThread(driving, pipeline, Delivery.NEWEST, on_event=_print_stall) as thread:
        for _ in itertools.repeat(None) if max_frames is None else range(max_frames):  # frames rendered
            if (driven := thread.get()) is None:
                break
            yield driven
    return thread.final_event


def _print_stall(event: DrivingEvent) -> None:
    """One line on stderr when a live camera stops delivering and one when it is back."""
    if event.kind in ("stalled", "resumed"):
        print(f"  {event.message}", file=sys.stderr, flush=True)


def _drive(
    frames: Iterator[Shown],
    avatar: Avatar,
    view: View,
    backend: str,
    writer: AtomicMp4Writer | None,
    stats: DriveStats,
    meter: LatencyMeter | None = None,
) -> SourceEvent:
    """Render and encode every frame; fills ``stats`` (and ``meter``, with the time each frame
    was done); returns the input's ending event."""
    progress = ProgressClock(PROGRESS_INTERVAL_S)
    started = time.perf_counter()
    while True:
        try:
            shown = next(frames)
        except StopIteration as end:
            stats.wall_s = time.perf_counter() - started
            return end.value
        clock = time.perf_counter()
        frame_view = view if shown.camera is None else dataclasses.replace(view, camera=shown.camera)
        image = rgb8(render_view(avatar, frame_view, shown.state, backend))
        rendered = time.perf_counter()
        if writer:
            writer.write(image)
        encoded = time.perf_counter()
        if meter is not None and shown.index is not None:
            meter.shown(shown.index, shown.captured_s)
        stats.add(shown, _ms(rendered - clock), _ms(encoded - rendered))
        if progress.due():
            stats.wall_s = time.perf_counter() - started
            print(f"  drove {stats.frames} frames, {stats.fps:.1f} FPS", file=sys.stderr, flush=True)


def _print_summary(
    args: argparse.Namespace,
    driving: Driving,
    event: SourceEvent,
    stats: DriveStats,
    avatar: Avatar,
    view: View,
    backend: str,
) -> None:
    name = driving.name
    ending = {
        SourceEvent.ENDED: driving.ended if args.max_frames is None or stats.frames < args.max_frames
        else f"--max-frames {args.max_frames} reached",
        SourceEvent.DISCONNECTED: f"{name} disconnected",
        SourceEvent.FAILED: f"reading {name} failed",
    }[event]
    stages = ", ".join(f"{stage} {ms:.1f}" for stage, ms in stats.ms_per_frame().items())
    print(f"input:            {name} ({ending})")
    gaussians = f"{avatar.num_gaussians(view.lod)} Gaussians"
    print(f"avatar:           {Path(args.avatar).name}, LOD {view.lod} ({gaussians}), renderer {backend}")
    if args.driver is not None:
        relative = "" if avatar.flame is not None else " since its first frame"
        framing = "each frame's own camera (the bust turns)" if args.driver_camera else f"turns the head{relative}"
        print(f"head pose:        the driver's, {framing}")
    if avatar.flame is not None:
        refiner = "on" if view.use_refiner and avatar.refiner is not None else "off (coarse RGB)"
        print(f"network avatar:   expressions {driving.expressions}, refiner {refiner}")
    if args.output:
        print(f"output:           {args.output} ({stats.frames} frames)")
    print(f"frames:           {stats.frames} ({stats.tracked} with a face)")
    print(f"FPS:              {stats.fps:.1f} end to end ({1000.0 / max(stats.fps, 1e-9):.1f} ms per frame, "
          f"{_mode(args)})")  # fmt: skip
    print(f"ms per frame:     {stages}")


def _ms(seconds: float) -> float:
    return 1000.0 * seconds
