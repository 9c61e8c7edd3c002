"""One video clip -> one training clip of :mod:`core.dataset.layout` (``omg-avatar preprocess``).

Per clip (:func:`preprocess_clip`):

* ``frames_per_clip`` frame indices spread uniformly over the video (:func:`sample_indices`);
* every frame up to the last sampled one is tracked in order (MediaPipe's video mode and
  the tracker's fixed framing need consecutive frames), only the sampled ones are kept:
  the tracker's crop (``tracking.crop.output_size``, 512 in the paper's config) and its
  landmarks in crop pixels;
* the portrait mask of each kept crop (MediaPipe selfie segmentation), and the crop
  multiplied by it, so background (mask 0) pixels are black;
* the camera: with a FLAME file, a FLAME fit of the kept frames (shape calibrated on the
  first ones, :class:`~core.tracking.flame_tracking.CalibratedFitting`) with the head pose
  as the fitting camera's extrinsic; without one, the tracker's crop camera.

Sampled frames without a face are left out; a clip missing more than
:data:`MAX_MISSING_FRACTION` of them fails. A clip is written into a hidden folder beside
its final place and renamed into place once complete, so ``clips/`` only ever holds
finished clips: that is how a re-run knows which to skip.
"""

from __future__ import annotations

import functools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import Config, FlameConfig
from core.dataset.layout import CAMERA_KEYS, write_clip
from core.errors import OmgError
from core.flame import FlameLayer, load_flame_layer
from core.tracking.face_mesh import PortraitSegmenter
from core.tracking.flame_tracking import CalibratedFitting
from core.tracking.person_mask import person_in_crop
from core.tracking.sources import VideoFileSource
from core.tracking.tracker import TrackedFrame, Tracker

#: A clip fails when more than this fraction of its sampled frames has no face.
MAX_MISSING_FRACTION = 0.2
#: Prefix of the folders clips are written into before they are renamed into place.
PARTIAL_PREFIX = ".partial-"


class ClipError(OmgError):
    """A video cannot become a training clip (too few faces, no frames)."""


@dataclass(frozen=True)
class ClipJob:
    """What a worker needs to preprocess one video (picklable, for spawned workers).

    Attributes:
        video: the video file; the clip is named after its stem.
        clips_dir: the dataset's ``clips`` folder.
        frames_per_clip: frames to sample (fewer when the video is shorter).
        config: tracking, camera, FLAME and fitter settings.
        flame_file: the FLAME model to fit, or None for the tracker's camera only.
    """

    video: Path
    clips_dir: Path
    frames_per_clip: int
    config: Config
    flame_file: Path | None

    @property
    def name(self) -> str:
        return self.video.stem


@dataclass(frozen=True)
class ClipResult:
    """How one clip went: ``frames`` written (0 on failure) and why it failed (None: it did not)."""

    name: str
    frames: int
    seconds: float
    error: str | None = None


def sample_indices(frame_count: int, wanted: int) -> np.ndarray:
    """[min(wanted, frame_count)] distinct increasing frame indices: the middle frames of
    equal segments of the video."""
    count = min(wanted, frame_count)
    return np.floor((np.arange(count) + 0.5) * frame_count / count).astype(np.int64)


def preprocess_clip(job: ClipJob) -> ClipResult:
    """Preprocess ``job.video`` into ``job.clips_dir/<name>``; any error is returned, not raised,
    and leaves no folder behind."""
    started = time.perf_counter()
    partial = job.clips_dir / f"{PARTIAL_PREFIX}{job.name}"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        kept, frame_shape = _tracked_samples(job)
        images, masks = _segmented(kept, frame_shape)
        params = {"landmarks": np.stack([frame.landmarks for frame in kept]).astype(np.float32)}
        params.update(_flame_params(job, kept) if job.flame_file else _tracker_cameras(kept))
        write_clip(partial, images, masks, params)
        partial.rename(job.clips_dir / job.name)
    except Exception as exc:  # noqa: BLE001 - a failed clip is reported and skipped, never fatal
        reason = str(exc) if isinstance(exc, OmgError) else f"{type(exc).__name__}: {exc}"
        return ClipResult(job.name, 0, time.perf_counter() - started, reason)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return ClipResult(job.name, len(kept), time.perf_counter() - started)


def finished_clips(clips_dir: Path) -> dict[str, int]:
    """Name -> frame count of every finished clip under ``clips_dir``, by name."""
    folders = sorted(p for p in clips_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {folder.name: sum(1 for _ in (folder / "frames").iterdir()) for folder in folders}


def remove_partial_clips(clips_dir: Path) -> None:
    """Delete the half-written folders an interrupted run left under ``clips_dir``."""
    for folder in clips_dir.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(folder, ignore_errors=True)


def _tracked_samples(job: ClipJob) -> tuple[list[TrackedFrame], tuple[int, ...]]:
    """The tracked sampled frames that have a face (see the module docstring), and the
    video's frame shape (H, W, 3)."""
    kept: list[TrackedFrame] = []
    with VideoFileSource(job.video) as source, Tracker.from_config(job.config) as tracker:
        if source.frame_count == 0:
            raise ClipError(f"{job.video.name} declares no frames")
        wanted = sample_indices(source.frame_count, job.frames_per_clip)
        sampled = set(wanted.tolist())
        for frame in source:
            if frame.index > wanted[-1]:
                break
            tracked = tracker.track(frame)
            frame_shape = frame.rgb.shape
            if frame.index in sampled and tracked.tracked:
                kept.append(tracked)
    missing = len(wanted) - len(kept)
    if missing > MAX_MISSING_FRACTION * len(wanted) or not kept:
        raise ClipError(f"no face in {missing} of {len(wanted)} sampled frames")
    return kept, frame_shape


def _segmented(kept: list[TrackedFrame], frame_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images [F, S, S, 3] uint8 on black and the followed person's masks [F, S, S] uint8
    (255 = person; :func:`~core.tracking.person_mask.person_in_crop`) of frames of ``frame_shape``."""
    with PortraitSegmenter() as segmenter:
        masks = np.stack([
            np.rint(255.0 * person_in_crop(segmenter, frame.crop, frame.box, frame.landmarks, frame_shape))
            for frame in kept
        ]).astype(np.uint8)  # fmt: skip
    crops = np.stack([frame.crop for frame in kept]).astype(np.uint16)
    images = (crops * masks[..., None] + 127) // 255  # crop * mask / 255, rounded, in integers
    return images.astype(np.uint8), masks


def _tracker_cameras(kept: list[TrackedFrame]) -> dict[str, np.ndarray]:
    """K [F, 3, 3], R [F, 3, 3], t [F, 3] of the tracker's crop cameras."""
    return {key: np.stack([getattr(frame.camera, key) for frame in kept]) for key in CAMERA_KEYS}


def _flame_params(job: ClipJob, kept: list[TrackedFrame]) -> dict[str, np.ndarray]:
    """The FLAME fit of every kept frame: its coefficients and its camera (module docstring)."""
    layer = _flame_layer(job.flame_file, job.config.flame)
    fitting = CalibratedFitting.from_config(layer, job.config, job.config.tracking.crop.output_size)
    fits = [fit for frame in kept for fit in fitting.add(frame.landmarks)] + fitting.finish()
    cameras = [fit.camera_extrinsic(fitting.fitter.camera) for fit in fits]
    fields = ["shape", "expression", "jaw", "eyes"] + (["eyelids"] if layer.has_eyelids else [])
    params = {name: np.stack([getattr(fit, name) for fit in fits]).astype(np.float32) for name in fields}
    params.update({key: np.stack([getattr(camera, key) for camera in cameras]) for key in CAMERA_KEYS})
    return params


@functools.lru_cache(maxsize=1)
def _flame_layer(flame_file: Path, config: FlameConfig) -> FlameLayer:
    """The FLAME layer, loaded once per worker process."""
    return load_flame_layer(flame_file, config)
