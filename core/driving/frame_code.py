"""A machine-readable corner code that stamps a frame with its index and the time it was sent.

The loopback camera (:mod:`core.driving.loopback`) stamps every frame it serves; whoever
reads the stream (``omg-avatar drive --latency-json``, the app's smoke run) reads the code
back from the captured image and keeps the index and the send time with the frame through
tracking, animation and rendering: the time it is shown, less the send time, is the
capture-to-display latency, and gaps in the indices are the frames dropped on the way.

The send time is the wall clock (``time.time()``), which every process of a machine
shares, so the camera may run in another process (``omg-avatar loopback-camera``).

Layout: two rows of :data:`ROW_CELLS` square cells of :data:`CELL` pixels in the top-left
corner: a white and a black reference cell, :data:`INDEX_BITS` bits of the index, then
:data:`CLOCK_BITS` bits of the send time in milliseconds, most significant bit first,
white for 1. A cell of whole 8x8 blocks keeps its level through JPEG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

#: Bits of the index (indices wrap around at 2 ** INDEX_BITS).
INDEX_BITS = 16
#: Bits of the send time in milliseconds (it wraps around every 2 ** CLOCK_BITS ms, 4.7 hours;
#: a frame is read back long before that).
CLOCK_BITS = 24
#: Cells per row, and the rows' cells in order: a white and a black reference, then the bits.
ROW_CELLS = 21
CODE_CELLS = 2 + INDEX_BITS + CLOCK_BITS
#: Side of one cell, pixels.
CELL = 8
#: Width and height of the code, pixels.
CODE_SIZE = (ROW_CELLS * CELL, -(-CODE_CELLS // ROW_CELLS) * CELL)


@dataclass(frozen=True)
class FrameCode:
    """What a corner code says: the frame's ``index`` and ``sent_s``, the wall-clock time
    (``time.time()``) it was sent, to the millisecond."""

    index: int
    sent_s: float


def stamp_code(bgr: np.ndarray, index: int, sent_s: float | None = None) -> np.ndarray:
    """``bgr`` [H, W, 3] uint8 with ``index`` (modulo 2 ** INDEX_BITS) and ``sent_s`` (default
    now) coded in its top-left corner, in place. Raises ValueError for a frame smaller than
    :data:`CODE_SIZE`."""
    width, height = CODE_SIZE
    if bgr.shape[0] < height or bgr.shape[1] < width:
        raise ValueError(f"a {bgr.shape[1]}x{bgr.shape[0]} frame is too small for the {width}x{height} corner code")
    sent_ms = round(1000.0 * (time.time() if sent_s is None else sent_s))
    bits = _bits(index, INDEX_BITS) + _bits(sent_ms, CLOCK_BITS)
    for cell, level in enumerate([255, 0] + [255 * bit for bit in bits]):
        y, x = _cell_corner(cell)
        bgr[y : y + CELL, x : x + CELL] = level
    return bgr


def read_code(image: np.ndarray, now_s: float | None = None) -> FrameCode | None:
    """The code in [H, W, 3] ``image``'s corner (any channel order), or None when the corner
    holds none (its reference cells are not white and black). The send time is the latest
    time, no later than ``now_s`` (default now), whose milliseconds match the code's."""
    width, height = CODE_SIZE
    if image.shape[0] < height or image.shape[1] < width:
        return None
    margin = CELL // 4  # cell centres only: JPEG blurs the edges between cells
    levels = []
    for cell in range(CODE_CELLS):
        y, x = _cell_corner(cell)
        levels.append(float(image[y + margin : y + CELL - margin, x + margin : x + CELL - margin].mean()))
    white, black = levels[0], levels[1]
    if white - black < 128:
        return None
    bits = [int(level > (white + black) / 2.0) for level in levels[2:]]
    index, sent_ms = _number(bits[:INDEX_BITS]), _number(bits[INDEX_BITS:])
    now_ms = round(1000.0 * (time.time() if now_s is None else now_s))
    age_ms = (now_ms - sent_ms) % (1 << CLOCK_BITS)
    return FrameCode(index, (now_ms - age_ms) / 1000.0)


def _cell_corner(cell: int) -> tuple[int, int]:
    """(y, x) of cell ``cell``'s top-left pixel."""
    row, column = divmod(cell, ROW_CELLS)
    return row * CELL, column * CELL


def _bits(value: int, count: int) -> list[int]:
    """The low ``count`` bits of ``value``, most significant first."""
    return [(value >> bit) & 1 for bit in reversed(range(count))]


def _number(bits: list[int]) -> int:
    return sum(bit << position for position, bit in enumerate(reversed(bits)))
