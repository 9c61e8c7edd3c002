"""The cropped frames of a release driver folder: ``img_lmdb/``, an LMDB database whose keys are
the frame keys (UTF-8) and whose values are JPEGs (PNGs are read too) of the release's 512 x 512
crops, background matted to black. They are the ground truth of ``omg-avatar eval``.

The database is opened read-only without a lock file. A value is checked before it is decoded:
at most :data:`MAX_IMAGE_BYTES`, a JPEG or PNG (the release's fallback of a pickled tensor
payload is refused, never unpickled), at most :data:`MAX_IMAGE_SIDE` pixels a side. Every
problem is one :class:`~core.errors.InputImageError` line naming the folder and the frame.
"""

from __future__ import annotations

import io
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from core.errors import InputImageError, first_line

#: The database's folder inside a driver folder.
IMAGES_FOLDER = "img_lmdb"
#: Largest stored frame read (a 512 crop at JPEG q95 is about 100 KB).
MAX_IMAGE_BYTES = 32 << 20
#: Largest side of a stored frame.
MAX_IMAGE_SIDE = 4096
_FORMATS = ("JPEG", "PNG")


class DriverImages:
    """The frames of ``folder``'s ``img_lmdb/``, read-only; close it (or use ``with``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = images_folder(self.folder)
        try:
            self._env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
        except lmdb.Error as exc:
            raise InputImageError(f"{path}: not a readable LMDB database ({first_line(exc)})") from None

    def image(self, key: str) -> np.ndarray:
        """[H, W, 3] uint8 RGB of frame ``key``."""
        database = f"{self.folder.name}/{IMAGES_FOLDER}"
        with self._env.begin(buffers=True) as transaction:
            value = transaction.get(key.encode("utf-8"))  # a view of the mapped file: sized before it is copied
            if value is None:
                raise InputImageError(f"{database}: has no frame '{key}'")
            if len(value) > MAX_IMAGE_BYTES:
                raise InputImageError(f"{database}: frame '{key}' is {len(value)} bytes, more than {MAX_IMAGE_BYTES}")
            data = bytes(value)
        return _decoded(data, f"{database}: frame '{key}'")

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> DriverImages:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def images_folder(folder: Path) -> Path:
    """``folder``'s ``img_lmdb/``; an InputImageError when it has none."""
    path = folder / IMAGES_FOLDER
    if not path.is_dir():
        raise InputImageError(f"{folder}: has no {IMAGES_FOLDER}/ (the release's cropped frames, the ground truth "
                              "eval compares with)")  # fmt: skip
    return path


def _decoded(data: bytes, what: str) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a JPEG or PNG ``data``; an InputImageError naming ``what`` otherwise."""
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
            if max(image.size) > MAX_IMAGE_SIDE:
                width, height = image.size
                raise InputImageError(f"{what} is {width}x{height} pixels, more than {MAX_IMAGE_SIDE} a side")
            return np.asarray(image.convert("RGB"))
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise InputImageError(f"{what} is not a readable JPEG or PNG ({first_line(exc)})") from None

