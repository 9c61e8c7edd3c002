"""Tracked driver folders in the OMG-Avatar release's layout: the FLAME parameters and camera of
every frame of a driving video, as the release's offline tracker writes them.

A folder ``<name>/`` holds ``smoothed.pkl`` (a video: every frame, camera and eyes smoothed over
time) and ``optim.pkl`` (the same frames unsmoothed), beside ``img_lmdb/`` (the cropped frames,
the ground truth of ``eval``), ``base.pkl`` and previews, none of which driving needs.
``smoothed.pkl`` is read when present, else ``optim.pkl``. Each is a pickle of
``{frame key: {field: float32 array}}`` with the fields of :data:`FIELDS`; frames are ordered by
the integer after the key's last ``_`` (keys ``<video>_<index>``: ``optim.pkl`` stores them in
text order). Extra fields are ignored.

A pickle can run code when loaded: these are read by :class:`~core.numpy_pickle.NumpyUnpickler`,
which admits numpy's array rebuilders only and refuses anything else by name before it runs,
after checking the file's size. Every problem (a refused class, a missing field, a wrong shape,
NaN) is one :class:`~core.errors.ModelFileError` line naming the file, the frame and the field.

How it drives (:mod:`core.driving.release_states`): frame k drives the avatar with the frame's
``expcode`` (expression), the jaw of ``posecode`` (its global rotation is zero from the tracker)
and ``eyecode`` (both eyes), posed by the avatar's FLAME rig, and with the frame's
``transform_matrix`` as the camera ([R | T], pytorch3d row-vector convention, focal 12: the
head pose lives in the camera): either the head moves so that the avatar's camera sees it as
that camera does, or the frame renders through that camera, as the release does.
``shapecode`` and ``bbox`` are kept for comparisons. ``omg-avatar drive --driver`` and
``omg-avatar eval`` (with ``img_lmdb/``, :mod:`core.driving.release_images`, as the ground
truth) step through :attr:`ReleaseDriver.frames` instead of the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import ModelFileError
from core.numpy_pickle import NumpyUnpickler, read_numpy_pickle

#: The driver files, in the order they are looked for.
DRIVER_FILES = ("smoothed.pkl", "optim.pkl")
#: Per-frame fields and their shapes.
FIELDS: dict[str, tuple[int, ...]] = {
    "shapecode": (300,),
    "expcode": (100,),
    "posecode": (6,),
    "eyecode": (6,),
    "transform_matrix": (3, 4),
    "bbox": (4,),
}
#: Largest driver file read: the release's 241-frame example is 0.5 MB (2 KB a frame).
MAX_DRIVER_BYTES = 256 << 20
#: The tracker's preview video, written at the rate of the frames it kept.
PREVIEW_VIDEO = "tracked.mp4"
#: The frame rate of a folder without a readable preview (the rate of the release's own videos).
DEFAULT_FPS = 25.0
#: Preview rates above this are not believed.
MAX_VIDEO_FPS = 240.0


@dataclass(frozen=True)
class DriverFrame:
    """One tracked frame (float32 arrays).

    Attributes:
        key: the frame's key in the file (``<video>_<index>``).
        index: the integer after the key's last ``_``, which orders the frames.
        shapecode: [300] FLAME shape.
        expcode: [100] FLAME expression.
        posecode: [6] global rotation (axis-angle, zero from the tracker) then jaw.
        eyecode: [6] left and right eye rotations.
        transform_matrix: [3, 4] camera [R | T] (pytorch3d row-vector convention).
        bbox: [4] head box x0, y0, x1, y1 in [0, 1] of the 512 crop.
    """

    key: str
    index: int
    shapecode: np.ndarray
    expcode: np.ndarray
    posecode: np.ndarray
    eyecode: np.ndarray
    transform_matrix: np.ndarray
    bbox: np.ndarray


@dataclass(frozen=True)
class ReleaseDriver:
    """A driver folder's frames, in order, and the file they came from."""

    file: Path
    frames: tuple[DriverFrame, ...]

    def __len__(self) -> int:
        return len(self.frames)


class _DriverUnpickler(NumpyUnpickler):
    what = "a driver file"


def find_driver_file(folder: str | Path) -> Path:
    """``smoothed.pkl`` in ``folder``, else ``optim.pkl``; a ModelFileError when neither is there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"driver folder not found: {folder}")
    for name in DRIVER_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelFileError(f"{folder}: has neither {' nor '.join(DRIVER_FILES)} (a tracked driver folder of the release)")


def driver_fps(folder: str | Path) -> float:
    """The frames' rate (the pickles store none): the driving video's, which the release's
    tracker gives its preview ``tracked.mp4``, halved above 50 FPS (the tracker kept every other
    frame there); :data:`DEFAULT_FPS` without a readable preview."""
    path = Path(folder) / PREVIEW_VIDEO
    if not path.is_file():
        return DEFAULT_FPS
    capture = cv2.VideoCapture(str(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    if not 1.0 <= fps <= MAX_VIDEO_FPS:
        return DEFAULT_FPS
    return fps / 2.0 if fps > 50.0 else fps


def load_release_driver(folder: str | Path) -> ReleaseDriver:
    """The frames of a driver folder (see the module docstring)."""
    return read_driver_file(find_driver_file(folder))


def read_driver_file(path: str | Path) -> ReleaseDriver:
    """The frames of one ``smoothed.pkl`` / ``optim.pkl``, validated and ordered."""
    path = Path(path)
    data = read_numpy_pickle(path, MAX_DRIVER_BYTES, _DriverUnpickler)
    if not isinstance(data, dict) or not data:
        what = "an empty dict" if isinstance(data, dict) else f"a {type(data).__name__}"
        raise ModelFileError(f"{path.name}: holds {what}, expected a dict of frames")
    frames = [_frame(path.name, key, record) for key, record in data.items()]
    frames.sort(key=lambda frame: frame.index)
    for earlier, later in pairwise(frames):
        if earlier.index == later.index:
            raise ModelFileError(f"{path.name}: frames '{earlier.key}' and '{later.key}' have the same index")
    return ReleaseDriver(path, tuple(frames))


def _frame(source: str, key: Any, record: Any) -> DriverFrame:
    if not isinstance(key, str):
        raise ModelFileError(f"{source}: has a frame key of type {type(key).__name__}, expected '<video>_<index>'")
    try:
        index = int(key.rsplit("_", 1)[-1])
    except ValueError:
        raise ModelFileError(f"{source}: frame key '{key[:60]}' does not end in _<index>") from None
    if not isinstance(record, dict):
        raise ModelFileError(f"{source}: frame '{key}' holds a {type(record).__name__}, expected a dict of arrays")
    fields = {}
    for name, shape in FIELDS.items():
        if name not in record:
            raise ModelFileError(f"{source}: frame '{key}' has no '{name}' (a driver frame has {', '.join(FIELDS)})")
        value = record[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            kind = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise ModelFileError(f"{source}: frame '{key}' field '{name}' holds {kind}, expected a float array")
        if value.shape != shape:
            raise ModelFileError(f"{source}: frame '{key}' field '{name}' has shape {value.shape}, expected {shape}")
        value = value.astype(np.float32)
        if not np.isfinite(value).all():
            raise ModelFileError(f"{source}: frame '{key}' field '{name}' has non-finite values")
        fields[name] = value
    return DriverFrame(key=key, index=index, **fields)
