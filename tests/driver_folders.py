"""Tracked driver folders in the OMG-Avatar release's layout, made for tests (a test helper):
``smoothed.pkl`` of float32 arrays keyed ``<video>_<index>``, and a hostile one."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from core.avatar import Avatar
from core.driving.release_driver import FIELDS
from core.geometry.release_camera import release_from_camera


def write_driver_folder(folder: Path, avatar: Avatar, yaws: list[float], jaw: float = 0.3) -> Path:
    """A driver folder whose frame k sees ``avatar``'s head from its source view turned by
    ``yaws[k]`` degrees, with a random expression and the jaw open by ``jaw`` radians."""
    rng = np.random.default_rng(0)
    frames = {}
    for index, yaw in enumerate(yaws):
        record = {name: np.zeros(shape, np.float32) for name, shape in FIELDS.items()}
        record["expcode"] = (0.5 * rng.standard_normal(100)).astype(np.float32)
        record["posecode"][3] = jaw
        record["transform_matrix"] = release_from_camera(avatar.camera(yaw)).astype(np.float32)
        record["bbox"] = np.array([0.2, 0.2, 0.8, 0.8], np.float32)
        frames[f"driver_{index}"] = record
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "smoothed.pkl").write_bytes(pickle.dumps(frames, protocol=4))
    return folder


class _MarkerMaker:
    """Unpickling this would create a file (what a hostile pickle does)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_hostile_folder(folder: Path, marker: Path) -> Path:
    """A driver folder whose ``smoothed.pkl`` would create ``marker`` if it were unpickled."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = {"driver_0": {name: np.zeros(shape, np.float32) for name, shape in FIELDS.items()}}
    frames["driver_0"]["expcode"] = _MarkerMaker(marker)
    (folder / "smoothed.pkl").write_bytes(pickle.dumps(frames, protocol=4))
    return folder
