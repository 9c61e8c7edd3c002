"""``omg-avatar drive``: render an avatar driven by a video or a webcam, optionally to MP4.

The per-frame path (:mod:`core.driving`): read a frame, track it (face mesh, head pose,
and for an avatar with a FLAME rig a FLAME fit when a FLAME file is at hand), animate
(driving state), render (:func:`core.avatar.view.render_view`: pose the Gaussians, splat
them, then the avatar's neural refiner when it has one and ``--no-refiner`` is not given),
encode. By default the stages run as a pipeline on two threads: a driving thread reads,
tracks and animates frame k+1 while the main thread renders and encodes frame k, so
throughput is set by the slower side, not by the sum of all stages (``--synchronous``
runs every stage on one thread, one frame after the other).

A video is processed frame by frame, every frame (the output has as many frames as the
input). A webcam keeps only its newest frame, so a slow renderer drops camera frames
instead of lagging; there the ``decode`` stage is the wait for the next camera frame.

The end of a video or a vanished webcam ends the run cleanly with its summary. The MP4
is written to a temporary file and renamed when complete; an error or an interrupt
(Ctrl-C) removes it, so no partial video is ever left behind (stop a webcam recording
with ``--max-frames``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.avatar import Avatar, load_avatar
from core.avatar.animation import REFERENCE_FRAMES, attach_flame
from core.avatar.view import View, render_view
from core.cli.arguments import non_negative_int, positive_int
from core.config import load_config
from core.driving import STAGES as DRIVING_STAGES
from core.driving import (
    Delivery,
    DrivenFrame,
    DrivingInput,
    DrivingPipeline,
    DrivingThread,
    LiveCamera,
    VideoPlayback,
    drive_input,
)
from core.errors import InputImageError, NoFaceError
from core.fileio import check_output_path
from core.flame import find_flame_file
from core.media import AtomicMp4Writer, rgb8
from core.progress import ProgressClock
from core.render import resolve_backend
from core.render.renderer import BACKENDS
from core.tracking.sources import SourceEvent

#: Timed stages, in pipeline order.
STAGES = (*DRIVING_STAGES, "render", "encode")
#: Seconds between progress lines on stderr.
PROGRESS_INTERVAL_S = 2.0
#: Background colours ``--background`` knows by name (RGB in 0..1).
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "green": (0.0, 1.0, 0.0)}


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
    parser.add_argument("--background", type=background_colour, default="black", metavar="COLOUR",
                        help="background: black, white, green or R,G,B in 0..1 (default black)")
    parser.add_argument("--reference-frames", type=positive_int, default=REFERENCE_FRAMES, metavar="N",
                        help="the driver's first N faces, averaged, are its neutral face (default %(default)s)")
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

    def add(self, driven: DrivenFrame, render_ms: float, encode_ms: float) -> None:
        """Count one driven frame and its stage times."""
        self.frames += 1
        self.tracked += driven.tracked.tracked
        for stage, ms in (*driven.stage_ms.items(), ("render", render_ms), ("encode", encode_ms)):
            self.stage_ms[stage] += ms


def open_input(video: str | None, webcam: int | None) -> DrivingInput:
    """A video file read every frame in order, or a webcam read for its newest frame."""
    return VideoPlayback(video) if video is not None else LiveCamera(webcam)


def run(args: argparse.Namespace) -> int:
    if args.output:
        check_output_path(args.output, (args.avatar, args.video))
    config = load_config(args.config)
    backend = resolve_backend(args.renderer)
    avatar = attach_flame(load_avatar(args.avatar), find_flame_file(args.flame, config.flame), config)
    view = View(avatar.camera(args.yaw, args.pitch), args.lod, background=args.background,
                use_refiner=not args.no_refiner)  # fmt: skip
    render_view(avatar, view, None, backend)  # checks the LOD; compiles or loads the render kernels before timing
    pipeline = DrivingPipeline(config, avatar, args.reference_frames)
    driving = open_input(args.video, args.webcam)
    stats = DriveStats()
    writer = AtomicMp4Writer(args.output, driving.fps, view.camera.width, view.camera.height) if args.output else None
    try:
        with contextlib.closing(_driven_frames(driving, pipeline, args.max_frames, args.synchronous)) as frames:
            event = _drive(frames, avatar, view, backend, writer, stats)
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
    _print_summary(args, driving.name, event, stats, avatar, view, backend, pipeline.fits_flame)
    return 0


def _driven_frames(
    driving: DrivingInput, pipeline: DrivingPipeline, max_frames: int | None, synchronous: bool
) -> Iterator[DrivenFrame]:
    """The input's frames through the pipeline: on a thread one frame ahead of the renderer,
    or one after the other on this thread (``synchronous``). Returns the ending event."""
    if synchronous:
        with pipeline, contextlib.closing(driving):
            return (yield from drive_input(driving, pipeline, max_frames))
    with DrivingThread(driving, pipeline, Delivery.ORDERED, max_frames) as thread:
        while (driven := thread.get()) is not None:
            yield driven
    return thread.final_event


def _drive(
    frames: Iterator[DrivenFrame],
    avatar: Avatar,
    view: View,
    backend: str,
    writer: AtomicMp4Writer | None,
    stats: DriveStats,
) -> SourceEvent:
    """Render and encode every driven frame; fills ``stats``; returns the input's ending event."""
    progress = ProgressClock(PROGRESS_INTERVAL_S)
    started = time.perf_counter()
    while True:
        try:
            driven = next(frames)
        except StopIteration as end:
            stats.wall_s = time.perf_counter() - started
            return end.value
        clock = time.perf_counter()
        image = rgb8(render_view(avatar, view, driven.state, backend))
        rendered = time.perf_counter()
        if writer:
            writer.write(image)
        encoded = time.perf_counter()
        stats.add(driven, _ms(rendered - clock), _ms(encoded - rendered))
        if progress.due():
            stats.wall_s = time.perf_counter() - started
            print(f"  drove {stats.frames} frames, {stats.fps:.1f} FPS", file=sys.stderr, flush=True)


def _print_summary(
    args: argparse.Namespace,
    name: str,
    event: SourceEvent,
    stats: DriveStats,
    avatar: Avatar,
    view: View,
    backend: str,
    fitted: bool,
) -> None:
    ending = {
        SourceEvent.ENDED: "the video ended" if args.max_frames is None or stats.frames < args.max_frames
        else f"--max-frames {args.max_frames} reached",
        SourceEvent.DISCONNECTED: f"{name} disconnected",
        SourceEvent.FAILED: f"reading {name} failed",
    }[event]
    stages = ", ".join(f"{stage} {ms:.1f}" for stage, ms in stats.ms_per_frame().items())
    print(f"input:            {name} ({ending})")
    gaussians = f"{avatar.num_gaussians(view.lod)} Gaussians"
    print(f"avatar:           {Path(args.avatar).name}, LOD {view.lod} ({gaussians}), renderer {backend}")
    if avatar.flame is not None:
        expressions = "FLAME fit per frame" if fitted else "the source's (no FLAME file)"
        refiner = "on" if view.use_refiner and avatar.refiner is not None else "off (coarse RGB)"
        print(f"network avatar:   expressions {expressions}, refiner {refiner}")
    if args.output:
        print(f"output:           {args.output} ({stats.frames} frames)")
    print(f"frames:           {stats.frames} ({stats.tracked} with a face)")
    mode = "synchronous" if args.synchronous else "pipelined"
    print(f"FPS:              {stats.fps:.1f} end to end ({1000.0 / max(stats.fps, 1e-9):.1f} ms per frame, "
          f"{mode})")  # fmt: skip
    print(f"ms per frame:     {stages}")


def _ms(seconds: float) -> float:
    return 1000.0 * seconds
