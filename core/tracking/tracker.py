"""Per-frame face tracking: frame -> face mesh -> crop -> smoothing -> head pose.

The face mesh runs on the whole frame (MediaPipe's video mode crops its own face region
and tracks it between frames); the landmarks then move into the frame's portrait crop,
the same framing as photos (:mod:`core.tracking.crop`), at ``CropConfig.output_size``.

Framing stays fixed: the crop box is computed from the first frame with a face and kept
until :meth:`Tracker.reset`, so head motion shows up as motion in the crop (as it must
to drive an avatar) instead of being cancelled by a moving box.

Smoothing acts on the landmarks in crop pixels, and the head pose is computed from the
smoothed landmarks: one filter in one unit, and a pose that agrees with the landmarks.
A frame without a face resets the filter, so no estimate glides across a gap.

FLAME fitting is the tracking step after this one
(:meth:`core.tracking.flame_tracking.CalibratedFitting.fit_frame`): every tracked frame
carries its landmarks in crop pixels and the :class:`~core.geometry.camera.Camera` of the
crop (intrinsics with the configured normalised focal length, head pose as extrinsic),
all a fitter needs, and the fitting step returns it with its :class:`FlameParams`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.config import CameraConfig, Config, TrackingConfig
from core.geometry.camera import Camera
from core.tracking.crop import CropBox, crop_box_from_landmarks, crop_image
from core.tracking.face_mesh import FaceMesh
from core.tracking.head_pose import HeadPose, estimate_head_pose
from core.tracking.smoothing import OneEuroFilter
from core.tracking.sources import Frame

if TYPE_CHECKING:
    from core.flame import FlameParams

#: Stages timed in ``TrackedFrame.stage_ms``, in pipeline order.
STAGES = ("face_mesh", "crop", "smoothing", "head_pose")


@dataclass(frozen=True)
class TrackedFrame:
    """What the tracker knows about one frame.

    Attributes:
        index, timestamp_s: those of the source frame.
        crop: [S, S, 3] uint8 crop of the frame, None until a face has fixed the framing.
        box: that crop's box in frame pixels (None likewise).
        landmarks: [N, 3] smoothed landmarks in crop pixels, None when no face was found.
        head_pose: head pose in the crop camera, None without a face.
        camera: the crop's camera with ``head_pose`` as extrinsic, None without a face.
        stage_ms: milliseconds spent per stage (keys from :data:`STAGES` that ran, and
            ``flame_fit`` after the FLAME fitting step).
        flame: the FLAME fitting step's newest fit (shape, expression, jaw, eyes, eyelids,
            head pose), None before that step, without a face, or while it calibrates.
    """

    index: int
    timestamp_s: float
    crop: np.ndarray | None
    box: CropBox | None
    landmarks: np.ndarray | None
    head_pose: HeadPose | None
    camera: Camera | None
    stage_ms: dict[str, float] = field(default_factory=dict)
    flame: FlameParams | None = None

    @property
    def tracked(self) -> bool:
        return self.landmarks is not None

    @property
    def total_ms(self) -> float:
        return sum(self.stage_ms.values())


class Tracker:
    """Tracks one face through consecutive frames of one source; close it to free MediaPipe."""

    def __init__(self, tracking: TrackingConfig, camera: CameraConfig, units_per_metre: float):
        self._crop_config = tracking.crop
        self._units_per_metre = units_per_metre
        size = tracking.crop.output_size
        self._intrinsics = Camera.intrinsics(size, size, camera.focal_normalized)
        self._mesh = FaceMesh(tracking, static=False)
        self._smoother = OneEuroFilter.from_config(tracking.smoothing)
        self._box: CropBox | None = None

    @classmethod
    def from_config(cls, config: Config) -> Tracker:
        return cls(config.tracking, config.camera, config.flame.scale)

    @property
    def intrinsics(self) -> np.ndarray:
        """[3, 3] intrinsics of the crop camera (what a FLAME fitter's fixed camera needs)."""
        return self._intrinsics.copy()

    def reset(self) -> None:
        """Reframe on the next face and forget the smoothing state."""
        self._box = None
        self._smoother.reset()

    def set_smoothing(self, min_cutoff_hz: float) -> None:
        """The One-Euro filter's minimum cutoff from the next frame on (lower: smoother, slower)."""
        self._smoother.min_cutoff = float(min_cutoff_hz)

    def track(self, frame: Frame) -> TrackedFrame:
        """Track one frame (frames must come in order)."""
        stage_ms: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stage_ms[stage] = (now - clock) * 1000.0
            clock = now

        landmarks = self._mesh.detect(frame.rgb)
        lap("face_mesh")
        if landmarks is not None and self._box is None:
            self._box = crop_box_from_landmarks(landmarks, self._crop_config)
        index, timestamp = frame.index, frame.timestamp_s
        if self._box is None:
            return TrackedFrame(index, timestamp, None, None, None, None, None, stage_ms)
        crop = crop_image(frame.rgb, self._box)
        lap("crop")
        if landmarks is None:
            self._smoother.reset()
            return TrackedFrame(index, timestamp, crop, self._box, None, None, None, stage_ms)
        smoothed = self._smoother(self._box.to_crop(landmarks), timestamp).astype(np.float32)
        lap("smoothing")
        pose = estimate_head_pose(smoothed, self._intrinsics, self._units_per_metre)
        camera = pose.camera(self._intrinsics, self._box.size, self._box.size)
        lap("head_pose")
        return TrackedFrame(index, timestamp, crop, self._box, smoothed, pose, camera, stage_ms)

    def track_frames(self, frames: Iterable[Frame]) -> Iterator[TrackedFrame]:
        """Track every frame of ``frames`` in order."""
        for frame in frames:
            yield self.track(frame)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
