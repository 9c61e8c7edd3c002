"""Training samples: a source and a driving frame of the same clip (the paper's
self-reenactment training), read from a dataset laid out as :mod:`core.dataset.layout` says.

Which frames make pair ``index`` depends only on the dataset, its ``seed``, the ``epoch``
and ``index``: the driving frame is the ``index``-th frame of the split's clips (in the
manifest's order), the source another frame of its clip drawn from a generator seeded by
``(seed, epoch, index)``. So resumed and distributed runs see the same pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from core.dataset.layout import CAMERA_KEYS, frame_path, read_manifest, read_params
from core.geometry.camera import Camera
from core.model.posing import FlameCoefficients

FLAME_FIELDS = tuple(f.name for f in fields(FlameCoefficients))


@dataclass(frozen=True)
class FrameSample:
    """One frame (S = the config's ``image_size``).

    Attributes:
        image: [3, S, S] RGB in [0, 1].
        mask: [1, S, S] portrait mask in [0, 1].
        flame: its FLAME coefficients, every stored field [1, n].
        camera: its camera for an S x S image.
    """

    image: Tensor
    mask: Tensor
    flame: FlameCoefficients
    camera: Camera


@dataclass(frozen=True)
class TrainingPair:
    """A source frame (what the network sees) and a driving frame (what it must render)."""

    source: FrameSample
    driving: FrameSample


@dataclass(frozen=True)
class FrameBatch:
    """B frames: image [B, 3, S, S], mask [B, 1, S, S], flame fields [B, n], B cameras."""

    image: Tensor
    mask: Tensor
    flame: FlameCoefficients
    cameras: tuple[Camera, ...]

    def to(self, device: torch.device | str) -> FrameBatch:
        values = {name: getattr(self.flame, name) for name in FLAME_FIELDS}
        flame = FlameCoefficients(**{name: None if v is None else v.to(device) for name, v in values.items()})
        return FrameBatch(self.image.to(device), self.mask.to(device), flame, self.cameras)


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


def _stack_frames(frames: Sequence[FrameSample]) -> FrameBatch:
    flame = {}
    for name in FLAME_FIELDS:
        values = [getattr(frame.flame, name) for frame in frames]
        flame[name] = None if values[0] is None else torch.cat(values)
    return FrameBatch(
        image=torch.stack([frame.image for frame in frames]),
        mask=torch.stack([frame.mask for frame in frames]),
        flame=FlameCoefficients(**flame),
        cameras=tuple(frame.camera for frame in frames),
    )


class PairDataset(Dataset):
    """(source, driving) pairs of one split of a dataset (see the module docstring).

    Args:
        root: the dataset folder (:mod:`core.dataset.layout`).
        split: "train" or "validation".
        image_size: S; frames of another size are resized and their cameras scaled.
        n_shape, n_expression: FLAME components the network takes; stored coefficients are
            cut or zero-padded to them.
        seed: the pair choice's seed.
    """

    def __init__(self, root: str | Path, split: str, image_size: int, n_shape: int, n_expression: int, seed: int):
        self.manifest = read_manifest(root)
        self.split = split
        self.clips = self.manifest.clips(split)
        self.image_size = image_size
        self.widths = {"shape": n_shape, "expression": n_expression}
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
            self._params[name] = read_params(clip_dir, self.manifest.frames[name])
        params = self._params[name]
        image, (width, height) = _read_image(frame_path(clip_dir, "frames", index), "RGB", self.image_size)
        mask, _ = _read_image(frame_path(clip_dir, "masks", index), "L", self.image_size)
        flame = {
            key: None if key not in params else self._coefficients(key, params[key][index])
            for key in FLAME_FIELDS
        }
        K, R, t = (params[key][index] for key in CAMERA_KEYS)
        camera = Camera(K, R, t, width, height).resized(self.image_size, self.image_size)
        return FrameSample(image, mask, FlameCoefficients(**flame), camera)

    def _coefficients(self, key: str, values: np.ndarray) -> Tensor:
        """[n] stored values -> [1, n'] float32, cut or zero-padded to the network's width."""
        values = np.asarray(values, np.float32).reshape(-1)
        width = self.widths.get(key, len(values))
        values = np.pad(values[:width], (0, max(0, width - len(values))))
        return torch.from_numpy(values)[None]


def _read_image(path: Path, mode: str, size: int) -> tuple[Tensor, tuple[int, int]]:
    """[C, size, size] float in [0, 1] (C = 3 for "RGB", 1 for "L") and the stored (width, height)."""
    with Image.open(path) as file:
        stored = file.size
        image = file.convert(mode)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, np.float32) / 255.0
    return torch.from_numpy(array.reshape(size, size, -1)).permute(2, 0, 1).contiguous(), stored
