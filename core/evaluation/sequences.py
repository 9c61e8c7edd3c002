"""What ``omg-avatar eval`` reenacts: a talking-head sequence, as a raw video, as a clip of
a preprocessed dataset (:mod:`core.dataset.layout`) or as a driver folder of the OMG-Avatar
release (:mod:`core.driving.release_driver`).

Either way a sequence gives, once opened:

* :meth:`Sequence.portrait`: its first frame as a source photo (the S x S crop, its
  landmarks and portrait mask; S = ``tracking.crop.output_size``);
* :meth:`Sequence.frames`: its frames from the first (the driver's neutral reference) on,
  for the per-frame path (:class:`core.driving.DrivingPipeline`): raw frames it tracks
  (``tracked`` False) with the portrait's crop box as its framing, or frames tracked
  already (``tracked`` True);
* :meth:`Sequence.target`: what a render of a tracked frame is compared with: the crop
  with its background replaced by :attr:`Sequence.background`;
* :meth:`Sequence.scored`: a render and its target as scored: where a video's crop reaches
  beyond its frame there is no ground truth (the crop is padded), so both show the
  background there.

A video is tracked by the pipeline as it is decoded, every frame cropped with the box that
framed its portrait (so targets and the avatar share one camera: the framing is computed
once, by the photo path, and never again by the tracker), and its targets are segmented
with MediaPipe's portrait mask onto white. A dataset clip was framed, tracked and segmented by
``omg-avatar preprocess``: its stored frames (on black) are the targets and its stored
landmarks drive. A driver folder was framed, tracked and matted by the release: its frames
(``img_lmdb/``, on black) are the targets, and its FLAME codes and cameras drive
(:class:`ReleaseFrame`), without the tracker; its first frame, as stored (the release's 512
framing), is the source photo.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from core.config import Config
from core.dataset.layout import DatasetError, Manifest, frame_path, read_params
from core.driving.release_driver import DriverFrame, load_release_driver
from core.driving.release_images import DriverImages, images_folder
from core.errors import InputImageError
from core.tracking.crop import CropBox, PortraitCrop, in_frame
from core.tracking.face_mesh import PortraitSegmenter
from core.tracking.person_mask import person_in_crop
from core.tracking.photo import Portrait, portrait_from_image
from core.tracking.sources import Frame, VideoFileSource
from core.tracking.tracker import TrackedFrame

WHITE, BLACK = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)


class Sequence(abc.ABC):
    """A talking-head sequence (see the module docstring); use it as a context manager."""

    #: Shown in reports, unique among the sequences of one evaluation.
    name: str
    #: RGB in [0, 1] of the targets' background, on which avatars are rendered too.
    background: tuple[float, float, float]
    #: Whether :meth:`frames` gives frames tracked already (else raw frames to track).
    tracked: bool

    @abc.abstractmethod
    def portrait(self) -> Portrait: ...

    @abc.abstractmethod
    def frames(self, max_frames: int | None = None) -> Iterator[Frame | TrackedFrame]:
        """The frames from the first on, up to frame index ``max_frames`` (exclusive)."""

    @abc.abstractmethod
    def target(self, tracked: TrackedFrame) -> np.ndarray:
        """[S, S, 3] uint8: what a render of the tracked frame ``tracked`` is compared with."""

    def scored(self, tracked: TrackedFrame, rendered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The [S, S, 3] uint8 render of ``tracked`` and its target, as they are scored."""
        return rendered, self.target(tracked)

    def __enter__(self) -> Sequence:
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class VideoSequence(Sequence):
    """A raw video, tracked as it is decoded; targets segmented with ``segmenter`` onto white."""

    background = WHITE
    tracked = False

    def __init__(self, path: Path, config: Config, segmenter: PortraitSegmenter):
        self.path, self.name = Path(path), Path(path).name
        self._config, self._segmenter = config, segmenter

    def __enter__(self) -> VideoSequence:
        self._video = VideoFileSource(self.path)
        try:
            self._first = self._video.read()
            if not isinstance(self._first, Frame):
                raise InputImageError(f"{self.name} has no frames")
            self._portrait = portrait_from_image(self._first.rgb, f"the first frame of {self.name}",
                                                 self._config.tracking)  # fmt: skip
        except BaseException:
            self._video.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._video.close()

    def portrait(self) -> Portrait:
        return self._portrait

    def frames(self, max_frames: int | None = None) -> Iterator[Frame]:
        yield self._first
        for frame in self._video:
            if max_frames is not None and frame.index >= max_frames:
                return
            yield frame

    def target(self, tracked: TrackedFrame) -> np.ndarray:
        return _on_white(tracked.crop, self._person(tracked))

    def scored(self, tracked: TrackedFrame, rendered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = self._first.rgb.shape[:2]
        return _on_white(rendered, in_frame(tracked.box, width, height)), self.target(tracked)

    def _person(self, tracked: TrackedFrame) -> np.ndarray:
        """[S, S] the followed person's mask in the crop of ``tracked`` (none outside the frame)."""
        return person_in_crop(self._segmenter, tracked.crop, tracked.box, tracked.landmarks, self._first.rgb.shape)


def _on_white(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[S, S, 3] uint8 ``rgb`` shown where ``mask`` [S, S] in [0, 1] is, white elsewhere."""
    mask = mask[..., None]
    return np.rint(rgb * mask + 255.0 * (1.0 - mask)).astype(np.uint8)


class DatasetClipSequence(Sequence):
    """A clip of a preprocessed dataset: stored frames (the targets, on black), masks and
    landmarks, brought to ``size`` x ``size`` when stored at another size."""

    background = BLACK
    tracked = True

    def __init__(self, manifest: Manifest, clip: str, size: int):
        self.name = f"{manifest.root.name}/{clip}"
        self._clip_dir = manifest.clip_dir(clip)
        self._frames = manifest.frames[clip]
        self._size = size
        self._box = CropBox(0, 0, size, size)  # stored frames are the crops
        params = read_params(self._clip_dir, self._frames)
        if "landmarks" not in params:
            raise DatasetError(f"{self.name}: params.npz has no landmarks to drive with (re-run omg-avatar preprocess)")
        with Image.open(frame_path(self._clip_dir, "frames", 0)) as first:
            self._landmarks = params["landmarks"].astype(np.float64) * (size / first.size[0])  # pixels at ``size``
        if self._frames < 2:
            raise InputImageError(f"{self.name} has only one frame: nothing drives the avatar")

    def portrait(self) -> Portrait:
        image, landmarks = self._image("frames", 0), self._landmarks[0]
        mask = self._image("masks", 0).astype(np.float32) / 255.0
        crop = PortraitCrop(image, self._box, landmarks)
        return Portrait(f"the first frame of {self.name}", image, landmarks, crop, mask)

    def frames(self, max_frames: int | None = None) -> Iterator[TrackedFrame]:
        last = self._frames if max_frames is None else min(self._frames, max_frames)
        for index in range(last):
            yield self._tracked(index)

    def target(self, tracked: TrackedFrame) -> np.ndarray:
        return tracked.crop  # the stored frame: crop and target at once

    def _tracked(self, index: int) -> TrackedFrame:
        return TrackedFrame(index, 0.0, self._image("frames", index), self._box, self._landmarks[index], None, None)

    def _image(self, kind: str, index: int) -> np.ndarray:
        """Frame ``index`` of ``kind`` ("frames": [S, S, 3], "masks": [S, S]) as uint8 at ``size``."""
        with Image.open(frame_path(self._clip_dir, kind, index)) as file:
            image = np.asarray(file.convert("RGB" if kind == "frames" else "L"))
        if image.shape[0] != self._size:
            image = cv2.resize(image, (self._size, self._size), interpolation=cv2.INTER_AREA)
        return image


@dataclass(frozen=True)
class ReleaseFrame:
    """A driver folder's frame: its FLAME codes and camera, and its [S, S, 3] uint8 crop."""

    driver: DriverFrame
    image: np.ndarray

    @property
    def index(self) -> int:
        return self.driver.index


class DriverFolderSequence(Sequence):
    """A driver folder of the release: frames tracked already (:class:`ReleaseFrame`, driven
    without the tracker), its stored crops the targets, brought to ``size`` x ``size``.
    Its driver file is read (and checked) when it is made, ``img_lmdb/`` opened when it is."""

    background = BLACK
    tracked = True

    def __init__(self, folder: Path, size: int, segmenter: PortraitSegmenter, config: Config):
        self.folder, self.name = Path(folder), Path(folder).name
        self._driver = load_release_driver(self.folder)
        images_folder(self.folder)
        if len(self._driver) < 2:
            raise InputImageError(f"{self.name} has only one frame: nothing drives the avatar")
        self._size, self._segmenter, self._config = size, segmenter, config

    def __enter__(self) -> DriverFolderSequence:
        self._images = DriverImages(self.folder)
        try:
            self._portrait = self._first_portrait()
        except BaseException:
            self._images.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._images.close()

    def portrait(self) -> Portrait:
        return self._portrait

    def frames(self, max_frames: int | None = None) -> Iterator[ReleaseFrame]:
        for frame in self._driver.frames[:max_frames]:
            yield ReleaseFrame(frame, self._image(frame.key))

    def target(self, frame: ReleaseFrame) -> np.ndarray:
        return frame.image  # the stored crop

    def _first_portrait(self) -> Portrait:
        """The first frame as stored (no new framing): its crop is the whole image."""
        image = self._image(self._driver.frames[0].key)
        name = f"the first frame of {self.name}"
        landmarks = portrait_from_image(image, name, self._config.tracking).landmarks
        crop = PortraitCrop(image, CropBox(0, 0, self._size, self._size), landmarks)
        return Portrait(name, image, landmarks, crop, self._segmenter.mask(image))

    def _image(self, key: str) -> np.ndarray:
        image = self._images.image(key)
        if image.shape[:2] != (self._size, self._size):
            image = cv2.resize(image, (self._size, self._size), interpolation=cv2.INTER_AREA)
        return image


def dataset_sequences(manifest: Manifest, split: str, size: int) -> list[DatasetClipSequence]:
    """The clips of ``split`` ("train", "validation" or "all") as sequences of ``size`` x ``size`` frames."""
    names = list(manifest.frames) if split == "all" else manifest.clips(split)
    if not names:
        raise DatasetError(f"{manifest.root}: no {split} clips")
    return [DatasetClipSequence(manifest, name, size) for name in names]
