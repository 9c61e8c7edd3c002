"""What the commands show: rendered images as RGB8, MP4 videos (written atomically), contact sheets.

An :class:`AtomicMp4Writer` encodes into a hidden temporary file beside the target and
renames it over the target only on :meth:`~AtomicMp4Writer.commit`; leaving its ``with``
block through an exception (or an interrupt) deletes the temporary file, so a failed or
interrupted run leaves no partial video behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.errors import OmgError
from core.fileio import AtomicFile, write_bytes_atomic

#: MPEG-4 Part 2: the MP4 encoder in the opencv wheel's FFmpeg (it has no H.264 encoder).
MP4_FOURCC = "mp4v"
#: Pixels between the cells of a contact sheet, and their colour.
SHEET_GAP = 4
SHEET_GAP_COLOUR = (255, 255, 255)


class MediaWriteError(OmgError):
    """An output video or image cannot be written."""


def rgb8(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB from an [H, W, C >= 3] float image's first three channels (colours in [0, 1])."""
    scaled = np.multiply(image[..., :3], 255.0, dtype=np.float32)  # the one float temporary
    np.clip(scaled, 0.0, 255.0, out=scaled)
    scaled += 0.5
    return scaled.astype(np.uint8)


class AtomicMp4Writer:
    """Encodes [H, W, 3] uint8 RGB frames into an MP4 file that appears only when complete."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int):
        self.path = Path(path)
        self.frames = 0
        self._size = (width, height)
        # OpenCV chooses the container by the suffix, so the temporary name keeps ".mp4".
        self._file = AtomicFile(self.path, suffix=".mp4")
        try:
            fourcc = cv2.VideoWriter_fourcc(*MP4_FOURCC)
            self._writer = cv2.VideoWriter(str(self._file.temporary), fourcc, fps, self._size)
            if not self._writer.isOpened():
                raise MediaWriteError(f"cannot write an MP4 video at {self.path}")
        except BaseException:  # a failure, or a signal while the encoder opens: no temporary left
            self._file.discard()
            raise

    def write(self, rgb: np.ndarray) -> None:
        """Append one [H, W, 3] uint8 RGB frame of the writer's size."""
        if rgb.shape != (self._size[1], self._size[0], 3):
            raise ValueError(f"frame is {rgb.shape}, the video is {self._size[0]}x{self._size[1]}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def commit(self) -> None:
        """Finish the file and move it to ``path``."""
        self._writer.release()
        self._file.commit()

    def discard(self) -> None:
        """Drop everything written so far."""
        self._writer.release()
        self._file.discard()

    def __enter__(self) -> AtomicMp4Writer:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], column_labels: Sequence[str], cell: int = 256) -> np.ndarray:
    """Lay out images in a grid under a band of column titles, each image resized to ``cell``.

    Args:
        rows: R rows of C [H, W, 3] uint8 RGB images each.
        column_labels: C column titles.
        cell: side of each square cell in pixels.
    Returns:
        [band + R * cell + (R - 1) * gap, C * cell + (C - 1) * gap, 3] uint8 RGB sheet.
    """
    if not rows or any(len(row) != len(column_labels) for row in rows):
        raise ValueError(f"a contact sheet needs rows of {len(column_labels)} images")
    lines = [_join([_label(label, cell) for label in column_labels], axis=1)]
    for row in rows:
        lines.append(_join([cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA) for image in row], axis=1))
    return _join(lines, axis=0)


def captioned(rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy of [H, W, 3] uint8 ``rgb`` with ``text`` in its top-left corner, legible on any background."""
    out = rgb.copy()
    scale = rgb.shape[1] / 640.0
    origin = (max(2, rgb.shape[1] // 80), max(12, rgb.shape[0] // 20))
    for colour, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return out


def write_png_atomic(path: str | Path, rgb: np.ndarray) -> None:
    """Write [H, W, 3] uint8 RGB ``rgb`` as a PNG at ``path`` (temporary file, then rename)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise MediaWriteError(f"cannot encode {Path(path).name} as PNG")
    write_bytes_atomic(path, encoded.tobytes())


def _join(images: list[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate [H, W, 3] images along ``axis`` (1: side by side, 0: stacked) with gaps."""
    gap_shape = list(images[0].shape)
    gap_shape[axis] = SHEET_GAP
    gap = np.full(gap_shape, SHEET_GAP_COLOUR, np.uint8)
    parts = [part for image in images for part in (image, gap)][:-1]
    return np.concatenate(parts, axis=axis)


def _label(text: str, width: int) -> np.ndarray:
    """[band, width, 3] white band with ``text`` centred in black."""
    height = max(24, width // 10)
    band = np.full((height, width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, height / 40.0
    (text_width, text_height), _ = cv2.getTextSize(text, font, scale, 1)
    origin = ((width - text_width) // 2, (height + text_height) // 2)
    cv2.putText(band, text, origin, font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band
