"""``omg-avatar loopback-camera``: serve a video file as a live MJPEG stream on this computer,
as a phone camera app would on the network (:mod:`core.driving.loopback`).

Drive an avatar from it (``omg-avatar drive AVATAR --webcam URL``, or the app's webcam panel)
to try live driving without a camera, and measure the capture-to-display latency with
``--latency-json``: every frame carries its index and send time in a corner code.
"""

from __future__ import annotations

import argparse
import time

from core.arguments import frame_size
from core.driving.loopback import LoopbackCamera
from core.errors import FrameSourceError

#: The port served on by default.
DEFAULT_PORT = 8090


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loopback-camera",
        help="serve a video as a live camera stream on 127.0.0.1 (for trying and measuring live driving)",
        description="Serve VIDEO as a live MJPEG stream at http://127.0.0.1:PORT/video, at the video's frame rate, "
        "looping, each frame stamped with its index and send time in its top-left corner, until Ctrl-C.",
    )
    parser.add_argument("video", metavar="VIDEO", help="the video file to serve")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default %(default)s; 0: any free one)")
    parser.add_argument("--size", type=frame_size, default=(640, 480), metavar="WxH",
                        help="frame size (default 640x480)")
    parser.add_argument("--fps", type=float, metavar="F", help="frames per second (default: the video's)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        camera = LoopbackCamera(args.video, size=args.size, fps=args.fps, port=args.port)
    except OSError as exc:
        raise FrameSourceError(f"cannot serve on port {args.port}: {exc.strerror or exc} (try another --port)") from None
    with camera:
        width, height = args.size
        print(f"serving {args.video} at {camera.url} ({width}x{height}, {camera.fps:g} fps); Ctrl-C stops", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        print(f"served {camera.frames_sent} frames")
    return 0
