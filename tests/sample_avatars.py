"""Training-free avatars of the sample videos' first frames, made once per test run."""

from __future__ import annotations

import functools
from pathlib import Path

from core.avatar import Avatar, reconstruct
from core.config import load_config
from core.tracking.photo import Portrait, portrait_from_image
from core.tracking.sources import open_source

CONFIG = load_config("paper")


@functools.cache
def first_frame_avatar(samples_dir: Path, video: str) -> tuple[Portrait, Avatar]:
    """(portrait, avatar) of the first frame of ``samples_dir``/videos/``video``."""
    with open_source(samples_dir / "videos" / video) as source:
        frame = next(iter(source))
    portrait = portrait_from_image(frame.rgb, video, CONFIG.tracking)
    return portrait, reconstruct(portrait, config=CONFIG)
