"""Argument types shared by the ``omg-avatar`` subcommands and the app's command line
(argparse ``type=`` callables); they load neither torch nor OpenCV."""

from __future__ import annotations

import argparse

from core.tracking.stream_urls import STREAM_SCHEMES, is_stream_url


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def frame_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` in pixels, both positive."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected a positive WIDTHxHEIGHT, got {text}")
    return width, height


def camera_spec(text: str) -> int | str:
    """A webcam number or a stream URL from the command line (an argparse type)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if is_stream_url(text):
        return text
    raise argparse.ArgumentTypeError(
        f"expected a webcam number (0, 1, ...) or a stream URL ({', '.join(s + '://' for s in STREAM_SCHEMES[:3])}...), "
        f"got {text!r}"
    )
