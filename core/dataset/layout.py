"""The on-disk layout of a training dataset: the contract between ``preprocess`` (which
writes it) and the trainer (which reads it through :class:`core.train.pairs.PairDataset`).

::

    DATASET/
      manifest.json
      clips/<clip name>/
        frames/000000.png ...   RGB, S x S, background removed (composited on black);
                                 .png or .jpg, numbered from 0 without gaps
        masks/000000.png ...    8-bit grey portrait mask of each frame (255 = portrait)
        params.npz              per-frame arrays, F = the clip's frame count:
                                  FLAME (any subset of FlameCoefficients' fields; absent = zeros):
                                    shape [F, n_shape], expression [F, n_expression],
                                    eyelids [F, 2], rotation, neck, jaw [F, 3] (axis-angle),
                                    eyes [F, 6], translation [F, 3] (FLAME metres)
                                  camera (GAGAvatar's convention, head pose as the extrinsic):
                                    K [F, 3, 3] intrinsics in pixels of the stored frames,
                                    R [F, 3, 3], t [F, 3] world to camera (core.geometry.camera)
                                  landmarks [F, 478, 3] (optional; readers may ignore it):
                                    MediaPipe face mesh in pixels of the stored frames
                                    (x right, y down, z depth in x's scale)

``omg-avatar preprocess`` (:mod:`core.train.preprocess`) writes S = the tracking crop's
size (512) and always the landmarks. With a FLAME file, the FLAME fields are the fit's
shape, expression, jaw, eyes (and eyelids when the model has them); its rotation and
translation are not stored (they stay zero, as the trainer's posing expects) because the
camera carries that head pose: the fitting camera moved by it. Without a FLAME file there
are no FLAME fields and the camera is the crop camera with the tracker's head pose as
extrinsic: world space is then the head frame of :mod:`core.tracking.head_pose` (origin
between the eyes and nose base, FLAME's axes, world units), a rigid pose only.

``manifest.json``::

    {"format": "omg-avatar-pairs", "version": 1,
     "split": {"seed": 0, "validation_fraction": 0.05},
     "clips": [{"name": "clip_0001", "frames": 120}, ...],
     "validation": ["clip_0042", ...]}

The validation clips are fixed once, when the manifest is written, by
:func:`validation_split`: a clip is held out when a seeded hash of its name falls below the
fraction, so a clip's split never changes when others are added. Readers trust the list.
Frames may be any size: the reader resizes them (and scales ``K``) to the config's.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import OmgError, first_line
from core.fileio import write_bytes_atomic, write_json_atomic
from core.untrusted_npz import UNREADABLE_ARCHIVE_ERRORS, ArchiveError, declared_members, read_member

FORMAT = "omg-avatar-pairs"
VERSION = 1
MANIFEST = "manifest.json"
CAMERA_KEYS = ("K", "R", "t")
IMAGE_SUFFIXES = (".png", ".jpg")
#: Values per frame a params.npz array may hold (the landmarks' 478 x 3 are the most).
MAX_VALUES_PER_FRAME = 4096


class DatasetError(OmgError):
    """A training dataset is missing or does not follow the layout of :mod:`core.dataset.layout`."""


@dataclass(frozen=True)
class Manifest:
    """A dataset's manifest: clip names with their frame counts, and the validation clips."""

    root: Path
    frames: dict[str, int]  # clip name -> frame count, in the manifest's order
    validation: frozenset[str]

    def clips(self, split: str) -> list[str]:
        """The clip names of ``split`` ("train" or "validation"), in the manifest's order."""
        if split not in ("train", "validation"):
            raise ValueError(f"unknown split '{split}': train or validation")
        return [name for name in self.frames if (name in self.validation) == (split == "validation")]

    def clip_dir(self, name: str) -> Path:
        return self.root / "clips" / name


def validation_split(names: list[str], fraction: float, seed: int) -> list[str]:
    """The clips held out for validation: those whose hash of ``"<seed>/<name>"`` (uniform in
    [0, 1)) is below ``fraction``; at least one when ``fraction > 0`` and there are two or more."""
    scores = {name: _unit_hash(f"{seed}/{name}") for name in names}
    held_out = [name for name in names if scores[name] < fraction]
    if not held_out and fraction > 0 and len(names) > 1:
        held_out = [min(names, key=scores.__getitem__)]
    return held_out


def write_manifest(root: str | Path, frames: dict[str, int], validation_fraction: float, seed: int) -> Path:
    """Write ``root/manifest.json`` for clips ``frames`` (name -> frame count), the validation
    split chosen by :func:`validation_split`."""
    path = Path(root) / MANIFEST
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "split": {"seed": seed, "validation_fraction": validation_fraction},
        "clips": [{"name": name, "frames": count} for name, count in frames.items()],
        "validation": validation_split(list(frames), validation_fraction, seed),
    }
    write_json_atomic(path, manifest)
    return path


def read_manifest(root: str | Path) -> Manifest:
    """The manifest of the dataset at ``root``; :class:`DatasetError` when it is missing or malformed."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root} is not a training dataset: it has no {MANIFEST} (written by omg-avatar preprocess)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DatasetError(f"{path}: not an {FORMAT} manifest of version {VERSION}")
        frames = {str(clip["name"]): int(clip["frames"]) for clip in data["clips"]}
        validation = frozenset(str(name) for name in data["validation"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
    unknown = sorted(validation - set(frames))
    if unknown:
        raise DatasetError(f"{path}: validation clip(s) not among the clips: {', '.join(unknown[:5])}")
    missing = [name for name in frames if not (root / "clips" / name).is_dir()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} clip folder(s) missing under clips/, e.g. {missing[0]}")
    return Manifest(root, frames, validation)


def write_clip(folder: str | Path, images: np.ndarray, masks: np.ndarray, params: dict[str, np.ndarray]) -> None:
    """Write one clip: ``images`` [F, S, S, 3] uint8, ``masks`` [F, S, S] uint8, ``params``
    the per-frame arrays of ``params.npz`` (see the module docstring)."""
    folder = Path(folder)
    for kind, stack in (("frames", images), ("masks", masks)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(stack):
            Image.fromarray(image).save(folder / kind / f"{index:06d}.png")
    missing = [key for key in CAMERA_KEYS if key not in params]
    if missing:
        raise ValueError(f"params lack the camera array(s) {', '.join(missing)}")
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    write_bytes_atomic(folder / "params.npz", buffer.getvalue())


def frame_path(clip_dir: Path, kind: str, index: int) -> Path:
    """The file of frame ``index`` of ``kind`` ("frames" or "masks"); :class:`DatasetError` when absent."""
    for suffix in IMAGE_SUFFIXES:
        path = clip_dir / kind / f"{index:06d}{suffix}"
        if path.is_file():
            return path
    raise DatasetError(f"{clip_dir.name}: {kind}/{index:06d}.png (or .jpg) is missing")


def read_params(clip_dir: Path, frames: int) -> dict[str, np.ndarray]:
    """A clip's ``params.npz``, every array checked to have ``frames`` rows (of at most
    :data:`MAX_VALUES_PER_FRAME` values) before it is read."""
    path = clip_dir / "params.npz"
    if not path.is_file():
        raise DatasetError(f"{clip_dir.name}: params.npz is missing")
    try:  # a dataset may come from anywhere: shapes are checked before any array is read
        with zipfile.ZipFile(path) as archive:
            members = declared_members(archive)
            wrong = [name for name, member in members.items() if member.shape[:1] != (frames,)
                     or math.prod(member.shape[1:]) > MAX_VALUES_PER_FRAME]  # fmt: skip
            if wrong:
                raise DatasetError(f"{path}: array(s) not of {frames} rows of up to {MAX_VALUES_PER_FRAME} "
                                   f"values each: {', '.join(wrong[:5])}")  # fmt: skip
            params = {name: read_member(archive, member) for name, member in members.items()}
    except ArchiveError as exc:
        raise DatasetError(f"{path}: damaged ({exc})") from None
    except UNREADABLE_ARCHIVE_ERRORS as exc:
        raise DatasetError(f"{path}: not a readable .npz archive ({first_line(exc)})") from None
    missing = [key for key in CAMERA_KEYS if key not in params]
    if missing:
        raise DatasetError(f"{path}: camera array(s) missing: {', '.join(missing)}")
    return params


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64
