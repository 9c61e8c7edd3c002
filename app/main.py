"""Starting the app from the command line: options, the window, and what it opens with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from app.application import App
from core.session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppOptions:
    """What ``omg-avatar app`` was asked for (see app/launch.py)."""

    photo: Path | None = None
    video: Path | None = None
    webcam: int | str | None = None  # a webcam number or a stream URL
    lod: int = 1
    renderer: str = "auto"
    method: str | None = None
    config: str = "paper"
    width: int = 1600
    height: int = 1000
    settings_dir: Path | None = None


def start(options: AppOptions, paced_by_consumer: bool = False, stamped: bool = False) -> App:
    """Open the window and start building the avatar (the photo, or the demo portrait) and
    driving it (the video, the webcam or stream, or the idle animation; ``stamped``: the
    stream's frames carry the loopback camera's corner code)."""
    # The renderer's compiled kernels use both cores; torch's own thread pool on top of them,
    # the tracker and the window's software OpenGL made a 30 us tensor concatenation take
    # 12 ms (measured). The app's torch work is small: one thread is fastest.
    torch.set_num_threads(1)
    session = Session(options.config, options.renderer)
    app = App(session, options.settings_dir, options.method)
    app.view.lod = options.lod
    app.build(options.width, options.height)
    app.guarded(app.open_photo, options.photo)
    if options.video is not None:
        app.guarded(app.driving_panel.play_video, options.video, paced_by_consumer)
    elif options.webcam is not None:
        app.guarded(app.driving_panel.start_webcam, options.webcam, stamped)
    return app


def run(options: AppOptions) -> int:
    """The interactive app: runs until the window is closed."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = start(options)
    app.run()
    return 0
