"""Per-frame face tracking: frame -> face mesh -> followed face -> crop -> smoothing -> head pose.

The face mesh runs on the whole frame (MediaPipe's video mode crops its own face regions
and tracks them between frames) and finds up to ``TrackingConfig.max_faces`` faces, small
faces in a close-up (:mod:`core.tracking.frame_faces`); the
tracker follows one person among them (:mod:`core.tracking.follow`: the face nearest the
one followed so far, another only after that one has been lost for a while). The followed
face's landmarks then move into the frame's portrait crop, the same framing as photos
(:mod:`core.tracking.crop`), at ``CropConfig.output_size``.

Framing stays fixed: the crop box is computed from the first frame with a face (or given
to the tracker, as ``omg-avatar eval`` gives it its source photo's box) and kept until
:meth:`Tracker.reset` or a switch to another person, so head motion shows up as motion in
the crop (as it must to drive an avatar) instead of being cancelled by a moving box.

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
from core.tracking.follow import FaceFollower
from core.tracking.frame_faces import FrameFaces
from core.tracking.head_pose import HeadPose, estimate_head_pose
from core.tracking.smoothing import LandmarkSmoother
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
        other_faces: [F, 4] boxes (x0, y0, x1, y1) in crop pixels of the faces found and
            not followed (they may lie outside the crop); None before the framing.
        switched: the tracker followed another person from this frame on (reframed, smoothing
            restarted): what was learnt of the previous face no longer applies.
        raw_landmarks: [N, 3] ``landmarks`` before smoothing (what ``omg-avatar track``
            measures the smoothing against), None without a face.
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
    other_faces: np.ndarray | None = None
    switched: bool = False
    raw_landmarks: np.ndarray | None = None

    @property
    def tracked(self) -> bool:
        return self.landmarks is not None

    @property
    def total_ms(self) -> float:
        return sum(self.stage_ms.values())


class Tracker:
    """Tracks one person through consecutive frames of one source; close it to free MediaPipe.

    ``framing``: the crop box of every frame, given (its ``size`` the config's output size);
    None: computed from the first face followed.
    """

    def __init__(
        self, tracking: TrackingConfig, camera: CameraConfig, units_per_metre: float, framing: CropBox | None = None
    ):
        self._crop_config = tracking.crop
        self._units_per_metre = units_per_metre
        size = tracking.crop.output_size
        self._intrinsics = Camera.intrinsics(size, size, camera.focal_normalized)
        self._faces = FrameFaces(tracking)
        self._follower = FaceFollower()
        self._smoother = LandmarkSmoother(tracking.smoothing)
        self._framing = framing
        self._box = framing

    @classmethod
    def from_config(cls, config: Config, framing: CropBox | None = None) -> Tracker:
        return cls(config.tracking, config.camera, config.flame.scale, framing)

    @property
    def intrinsics(self) -> np.ndarray:
        """[3, 3] intrinsics of the crop camera (what a FLAME fitter's fixed camera needs)."""
        return self._intrinsics.copy()

    def reset(self) -> None:
        """Follow the next frame's largest face, reframe on it (unless the framing was given)
        and forget the smoothing state."""
        self._follower.reset()
        self._restart()

    def set_smoothing(self, min_cutoff_hz: float) -> None:
        """The default One-Euro minimum cutoff from the next frame on (lower: smoother, slower);
        every landmark group's cutoff scales with it."""
        self._smoother.set_min_cutoff(min_cutoff_hz)

    def track(self, frame: Frame) -> TrackedFrame:
        """Track one frame (frames must come in order)."""
        stage_ms: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stage_ms[stage] = (now - clock) * 1000.0
            clock = now

        index, timestamp = frame.index, frame.timestamp_s
        faces = self._faces.find(frame.rgb, self._follower.last_seen)
        following = self._follower.follow(faces, timestamp)
        landmarks, switched = following.landmarks, following.switched
        lap("face_mesh")
        if switched:
            self._restart()
        if landmarks is not None and self._box is None:
            self._box = crop_box_from_landmarks(landmarks, self._crop_config)
        if self._box is None:
            return TrackedFrame(index, timestamp, None, None, None, None, None, stage_ms)
        crop = crop_image(frame.rgb, self._box)
        others = self._box.to_crop(following.others.reshape(-1, 2, 2)).reshape(-1, 4)
        lap("crop")
        if landmarks is None:
            self._smoother.reset()
            return TrackedFrame(index, timestamp, crop, self._box, None, None, None, stage_ms, other_faces=others)
        raw = self._box.to_crop(landmarks)
        smoothed = self._smoother(raw, timestamp).astype(np.float32)
        lap("smoothing")
        pose = estimate_head_pose(smoothed, self._intrinsics, self._units_per_metre)
        camera = pose.camera(self._intrinsics, self._box.size, self._box.size)
        lap("head_pose")
        return TrackedFrame(index, timestamp, crop, self._box, smoothed, pose, camera, stage_ms,
                            other_faces=others, switched=switched, raw_landmarks=raw)  # fmt: skip

    def track_frames(self, frames: Iterable[Frame]) -> Iterator[TrackedFrame]:
        """Track every frame of ``frames`` in order."""
        for frame in frames:
            yield self.track(frame)

    def close(self) -> None:
        self._faces.close()

    def _restart(self) -> None:
        """Start over on the next face followed: its own framing (unless given), no smoothing state."""
        self._box = self._framing
        self._smoother.reset()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
