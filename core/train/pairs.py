"""Training samples: a source and a driving frame of the same clip (the paper's
self-reenactment training), read from a dataset laid out as :mod:`core.dataset.layout` says,
in the released network's convention (:mod:`core.model.release_network`). The portrait masks
are not read: the frames' backgrounds are black already, and the network makes its own masks.

Which frames make pair ``index`` depends only on the dataset, its ``seed``, the ``epoch``
and ``index``: the driving frame is the ``index``-th frame of the split's clips (in the
manifest's order), the source another frame of its clip drawn from a generator seeded by
``(seed, epoch, index)``. So resumed and distributed runs see the same pairs.

A frame's FLAME coefficients become the release's (:class:`FlamePose`): shape and expression
cut or zero-padded to its 300 and 100, pose = (global rotation zero, jaw), eyes (zeros when
not stored). The head pose is the camera's extrinsic, which the release takes as ``[R | T]``
(:func:`~core.geometry.release_camera.release_from_camera`); so a stored global rotation, neck
or translation that is not zero is a :class:`DatasetError`, as is a camera whose focal length is
not the release's. Eyelids, when stored, are left out: the release's FLAME has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from core.dataset.layout import CAMERA_KEYS, DatasetError, frame_path, read_manifest, read_params
from core.flame.release import RELEASE_EXPRESSION, RELEASE_SHAPE
from core.geometry.camera import Camera
from core.geometry.release_camera import RELEASE_FOCAL, release_focal, release_from_camera
from core.model.release_geometry import FlamePose

#: Stored FLAME fields the release's convention keeps at zero (the camera holds the head pose).
POSE_IN_CAMERA = ("rotation", "neck", "translation")
#: Largest relative difference of a frame's focal length from the release's.
FOCAL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FrameSample:
    """One frame (S = the config's ``image_size``).

    Attributes:
        image: [3, S, S] RGB in [0, 1], background black.
        pose: its FLAME coefficients in the release's convention, a batch of one.
        transform: [1, 3, 4] its camera as the release's ``[R | T]``.
        camera: the same camera for an S x S image.
    """

    image: Tensor
    pose: FlamePose
    transform: Tensor
    camera: Camera


@dataclass(frozen=True)
class TrainingPair:
    """A source frame (what the network sees) and a driving frame (what it must render)."""

    source: FrameSample
    driving: FrameSample


@dataclass(frozen=True)
class FrameBatch:
    """B frames: image [B, 3, S, S], pose fields [B, n], transform [B, 3, 4], B cameras."""

    image: Tensor
    pose: FlamePose
    transform: Tensor
    cameras: tuple[Camera, ...]

    def to(self, device: torch.device | str) -> FrameBatch:
        pose = FlamePose(*(value.to(device) for value in _pose_fields(self.pose)))
        return FrameBatch(self.image.to(device), pose, self.transform.to(device), self.cameras)


@dataclass(frozen=True)
class PairBatch:
    """B pairs, batched by :func:`collate_pairs`."""

    source: FrameBatch
    driving: FrameBatch

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.source.to(device), self.driving.to(device))


def collate_pairs(pairs: Sequence[TrainingPair]) -> PairBatch:
    """Stack B pairs into a :class:`PairBatch` (cameras as tuples)."""
    return PairBatch(*(_stack_frames([getattr(pair, side) for pair in pairs]) for side in ("source", "driving")))


def _pose_fields(pose: FlamePose) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return pose.shape, pose.expression, pose.pose, pose.eyes


def _stack_frames(frames: Sequence[FrameSample]) -> FrameBatch:
    fields = zip(*(_pose_fields(frame.pose) for frame in frames))
    return FrameBatch(
        image=torch.stack([frame.image for frame in frames]),
        pose=FlamePose(*(torch.cat(values) for values in fields)),
        transform=torch.cat([frame.transform for frame in frames]),
        cameras=tuple(frame.camera for frame in frames),
    )


class PairDataset(Dataset):
    """(source, driving) pairs of one split of a dataset (see the module docstring).

    Args:
        root: the dataset folder (:mod:`core.dataset.layout`).
        split: "train" or "validation".
        image_size: S; frames of another size are resized and their cameras scaled.
        seed: the pair choice's seed.
    """

    def __init__(self, root: str | Path, split: str, image_size: int, seed: int):
        self.manifest = read_manifest(root)
        self.split = split
        self.clips = self.manifest.clips(split)
        self.image_size = image_size
        self.seed = seed
        self.epoch = 0
        counts = [self.manifest.frames[name] for name in self.clips]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._params: dict[str, dict[str, np.ndarray]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Draw the sources of ``epoch`` (the driving frames are the same every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self._starts[-1])

    def frames_of(self, index: int) -> tuple[str, int, int]:
        """Pair ``index``'s clip name, source frame and driving frame."""
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} of {len(self)}")
        clip = int(np.searchsorted(self._starts, index, side="right")) - 1
        count = int(self._starts[clip + 1] - self._starts[clip])
        driving = index - int(self._starts[clip])
        source = driving
        if count > 1:
            draw = int(np.random.default_rng([self.seed, self.epoch, index]).integers(count - 1))
            source = draw + (draw >= driving)  # any frame but the driving one
        return self.clips[clip], source, driving

    def __getitem__(self, index: int) -> TrainingPair:
        name, source, driving = self.frames_of(index)
        return TrainingPair(self._frame(name, source), self._frame(name, driving))

    def _frame(self, name: str, index: int) -> FrameSample:
        clip_dir = self.manifest.clip_dir(name)
        if name not in self._params:
            self._params[name] = _checked_params(clip_dir, read_params(clip_dir, self.manifest.frames[name]))
        params = self._params[name]
        image, (width, height) = _read_image(frame_path(clip_dir, "frames", index), self.image_size)
        K, R, t = (params[key][index] for key in CAMERA_KEYS)
        camera = Camera(K, R, t, width, height).resized(self.image_size, self.image_size)
        return FrameSample(image, _release_pose(params, index), _release_transform(name, camera), camera)


def _checked_params(clip_dir: Path, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``params`` when they follow the release's convention (module docstring); else DatasetError."""
    posed = [key for key in POSE_IN_CAMERA if key in params and np.any(params[key])]
    if posed:
        raise DatasetError(f"{clip_dir.name}: FLAME {', '.join(posed)} not zero; the head pose must be the camera's")
    return params


def _release_transform(clip: str, camera: Camera) -> Tensor:
    """[1, 3, 4] float32 ``[R | T]`` of a frame's camera, which must be the release's (square,
    centred, focal 12); else DatasetError."""
    try:
        focal = release_focal(camera)
    except ValueError as exc:
        raise DatasetError(f"{clip}: {exc}") from None
    if abs(focal / RELEASE_FOCAL - 1) > FOCAL_TOLERANCE:
        raise DatasetError(f"{clip}: camera focal {focal:g}; the released network's is {RELEASE_FOCAL:g}")
    return torch.as_tensor(release_from_camera(camera), dtype=torch.float32)[None]


def _release_pose(params: dict[str, np.ndarray], index: int) -> FlamePose:
    """Frame ``index``'s coefficients as the release takes them, a batch of one (float32)."""

    def stored(key: str, width: int) -> Tensor:
        values = np.asarray(params[key][index] if key in params else [], np.float32).reshape(-1)[:width]
        return torch.from_numpy(np.pad(values, (0, width - len(values))))[None]

    pose = torch.cat([torch.zeros(1, 3), stored("jaw", 3)], dim=1)
    return FlamePose(stored("shape", RELEASE_SHAPE), stored("expression", RELEASE_EXPRESSION), pose, stored("eyes", 6))


def _read_image(path: Path, size: int) -> tuple[Tensor, tuple[int, int]]:
    """[3, size, size] RGB float in [0, 1] and the stored (width, height)."""
    with Image.open(path) as file:
        stored = file.size
        image = file.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), stored
