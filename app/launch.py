"""Starting the desktop app: its options and its start-up, for ``python -m app`` (and the
bundled executable) and for ``omg-avatar app``, which registers them from here.

Without arguments the app opens on the built-in demo portrait, driven by the idle
animation. ``--smoke`` runs the real window for ``--frames`` avatar frames (switching the
level of detail and orbiting along the way), saves a screenshot of the window, prints one
JSON line with at least ``frames``, ``render_fps`` and ``end_to_end_fps``, and exits; with
``--webcam URL`` of a stamped stream (``omg-avatar loopback-camera``) it also measures the
capture-to-display latency (``latency_ms_median``, ``latency_ms_p95``, ``frames_dropped``).

Importing this module loads neither Dear PyGui nor torch: ``omg-avatar`` declares these
options for every command it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.arguments import camera_spec, frame_size
from core.errors import FrameSourceError, InputImageError, exit_status

#: The ``app`` command's one-line help and its description.
HELP = "open the desktop app (demo portrait without arguments)"
DESCRIPTION = ("Open the OMG-Avatar window: build an avatar from a photo (or the demo portrait) "
               "and drive it from a video, a webcam, or the idle animation.")
#: core.session's RENDERER_CHOICES, spelt out: importing core.session here would load torch.
RENDERERS = ("auto", "gsplat", "cpu")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the app's options on ``parser``; the parsed arguments go to :func:`run`."""
    parser.add_argument("--photo", type=Path, metavar="P", help="portrait photo (default: the demo portrait)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", type=Path, metavar="V", help="drive the avatar with this video")
    source.add_argument("--webcam", type=camera_spec, metavar="N|URL",
                        help="drive the avatar with webcam N, or the network stream at URL (a phone camera app's "
                        "http://HOST:PORT/video, rtsp://..., omg-avatar loopback-camera's)")
    parser.add_argument("--lod", type=int, choices=(0, 1, 2), default=1, help="level of detail (default 1)")
    parser.add_argument("--renderer", choices=RENDERERS, default="auto", help="renderer (default auto)")
    parser.add_argument("--method", help="reconstruction method (default: the first available)")
    parser.add_argument("--config", default="paper", help="config name in assets/configs, or a YAML file")
    parser.add_argument("--window", type=frame_size, default=(1600, 1000), metavar="WxH",
                        help="window size (default 1600x1000)")
    smoke = parser.add_argument_group("smoke run (automated check)")
    smoke.add_argument("--smoke", action="store_true", help="run N frames, take a screenshot, print JSON, exit")
    smoke.add_argument("--frames", type=_positive, default=300, metavar="N", help="avatar frames (default 300)")
    smoke.add_argument("--screenshot", type=Path, metavar="OUT.png", help="save the window as a PNG at the end")
    smoke.add_argument("--json", type=Path, metavar="FILE", help="also write the JSON figures to FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omg-avatar app", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (None: the command line) and run the app; a user error is one line on
    stderr and its exit status, as with ``omg-avatar``."""
    args = build_parser().parse_args(argv)
    return exit_status("omg-avatar", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Open the window (or run the smoke script) with the parsed ``args``; 0 on success."""
    if args.photo is not None and not args.photo.is_file():
        raise InputImageError(f"photo not found: {args.photo}")
    if args.video is not None and not args.video.is_file():
        raise FrameSourceError(f"video file not found: {args.video}")
    from app import main, smoke  # the window and torch load only once the app runs
    from core.session import filter_native_logs

    filter_native_logs()  # MediaPipe's native log lines would bury our one-line errors

    options = main.AppOptions(
        photo=args.photo, video=args.video, webcam=args.webcam, lod=args.lod, renderer=args.renderer,
        method=args.method, config=args.config, width=args.window[0], height=args.window[1],
    )
    if args.smoke:
        return smoke.run(options, args.frames, args.screenshot, args.json)
    return main.run(options)
