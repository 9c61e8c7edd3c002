"""Scoring renders against their targets with the evaluation's metrics (:mod:`core.evaluation.metrics`),
for ``omg-avatar eval`` and the trainer's validation.

* Image metrics (PSNR, SSIM, LPIPS with a model file) compare a render with its target:
  only possible when the target shows what the render should be (self-reenactment).
* Motion metrics need the faces' landmarks, found afresh in both images by MediaPipe's face
  mesh in static mode (one detector for both): AKD (keypoint distance), APD (head pose
  distance) and, with a FLAME model, AED (expression distance, :func:`expression_distances`).
  A frame where either image shows no face has none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import Config, TrackingConfig
from core.evaluation.metrics import Lpips, keypoint_distance, pose_distance_deg, psnr, ssim
from core.flame import FlameLayer
from core.tracking.face_mesh import FaceMesh
from core.tracking.flame_tracking import CalibratedFitting
from core.tracking.head_pose import head_rotation


@dataclass(frozen=True)
class FrameScores:
    """One frame's scores; None where a metric is unavailable for it."""

    psnr: float | None = None
    ssim: float | None = None
    lpips: float | None = None
    akd: float | None = None
    apd: float | None = None
    aed: float | None = None


#: The metrics of :class:`FrameScores`, in order.
FRAME_METRICS = ("psnr", "ssim", "lpips", "akd", "apd", "aed")


class FrameScorer:
    """Image metrics and the landmarks that motion metrics need (owns a MediaPipe graph: close it)."""

    def __init__(self, tracking: TrackingConfig, lpips: Lpips | None):
        self.lpips = lpips
        self._mesh = FaceMesh(tracking, static=True)

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """[N, 3] pixel landmarks of the largest face in [H, W, 3] uint8 ``image``, None without one."""
        return self._mesh.detect(image)

    def compare(
        self,
        rendered: np.ndarray,
        target: np.ndarray,
        landmarks: tuple[np.ndarray | None, np.ndarray | None] | None = None,
    ) -> FrameScores:
        """PSNR, SSIM, LPIPS (with a model), AKD and APD of a [S, S, 3] uint8 render against
        its [S, S, 3] uint8 target; ``landmarks``: the two images' (:meth:`landmarks`) when
        already found."""
        image, reference = rendered / 255.0, target / 255.0
        if landmarks is None:
            landmarks = self.landmarks(rendered), self.landmarks(target)
        motion = motion_scores(*landmarks)
        lpips = self.lpips(image, reference) if self.lpips else None
        return FrameScores(psnr(image, reference), ssim(image, reference), lpips, *motion)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FrameScorer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def motion_scores(
    landmarks: np.ndarray | None, reference: np.ndarray | None
) -> tuple[float | None, float | None]:
    """AKD (pixels) and APD (degrees) of two faces' [N, 3] landmarks; None, None if either is None."""
    if landmarks is None or reference is None:
        return None, None
    return keypoint_distance(landmarks, reference), pose_distance_deg(head_rotation(landmarks), head_rotation(reference))


def relative_pose_distance_deg(
    landmarks: np.ndarray | None, rest: np.ndarray | None, reference: np.ndarray | None, reference_rest: np.ndarray | None
) -> float | None:
    """APD between two head motions: ``landmarks``' rotation relative to ``rest``'s against
    ``reference``'s relative to ``reference_rest``'s (all [N, 3] landmarks); None if any is None.
    Cross-identity reenactment moves the avatar by the driver's motion from its first frame,
    so that motion, not the two people's absolute poses, is what must agree."""
    if landmarks is None or rest is None or reference is None or reference_rest is None:
        return None
    moved = head_rotation(landmarks) @ head_rotation(rest).T
    driven = head_rotation(reference) @ head_rotation(reference_rest).T
    return pose_distance_deg(moved, driven)


def expression_distances(
    rendered: list[np.ndarray | None], driving: list[np.ndarray | None], flame: FlameLayer, config: Config, size: int
) -> list[float | None]:
    """AED per frame: the mean absolute difference of the FLAME expression coefficients and jaw
    rotation (radians) fitted to a render's landmarks and to its driving frame's.

    Each stream (renders, driving frames) is one identity: its shape is calibrated once on
    its first faces (:class:`~core.tracking.flame_tracking.CalibratedFitting`), then every
    face is fitted. Landmarks are [N, 3] pixels of ``size`` x ``size`` crops; None: no face,
    and no AED for that frame.
    """
    both = [k for k, (a, b) in enumerate(zip(rendered, driving)) if a is not None and b is not None]
    if not both:
        return [None] * len(rendered)
    codes = [_expression_codes([stream[k] for k in both], flame, config, size) for stream in (rendered, driving)]
    distances: list[float | None] = [None] * len(rendered)
    for k, a, b in zip(both, *codes):
        distances[k] = float(np.abs(a - b).mean())
    return distances


def _expression_codes(landmarks: list[np.ndarray], flame: FlameLayer, config: Config, size: int) -> list[np.ndarray]:
    """Per face, the fitted expression coefficients followed by the jaw rotation."""
    fitting = CalibratedFitting.from_config(flame, config, size)
    fits = [fit for points in landmarks for fit in fitting.add(points)] + fitting.finish()
    return [np.concatenate([fit.expression, fit.jaw]) for fit in fits]


def mean_present(values: list[float | None]) -> float | None:
    """The mean of the values that are not None (None if there are none)."""
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None
