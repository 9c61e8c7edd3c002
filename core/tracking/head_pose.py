"""Rigid head pose from MediaPipe's 3D face landmarks, as a camera extrinsic.

The pose maps head space to camera space, ``x_cam = rotation @ x_head + translation``,
in the conventions of :mod:`core.geometry.camera`: head space is FLAME's world (+x the
subject's left, +y up, +z out of the face) in FLAME units scaled by ``units_per_metre``;
camera space is OpenCV's. A frontal, upright head has ``rotation = diag(1, -1, -1)``.

MediaPipe's landmarks are a weak-perspective reconstruction: ``x, y`` in pixels and a
depth ``z`` (larger is farther) in the same pixel scale, so their directions are
camera-space directions. The head frame is built from landmarks that expressions barely
move (the mediapipe wheel ships no canonical face model to fit instead):

* +x: the mean direction from the subject's right to left over symmetric pairs (eye
  corners, nose wings, cheek contour);
* +y: from the nose base up to the eye corners, made orthogonal to +x and tilted by
  :data:`NOSE_TO_EYES_TILT_DEG` (eye corners sit behind the nose base) so that frontal,
  upright faces get zero pitch;
* +z = x cross y.

The head-space origin is the centroid of those eye-corner and nose-base anchors. Its
depth comes from the 3D distance between the outer eye corners, an anthropometric
constant (:data:`OUTER_EYE_CORNER_DISTANCE_M`), and the intrinsics' focal length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.geometry.camera import Camera

#: MediaPipe landmark pairs (subject's left, subject's right), symmetric about the midline.
SYMMETRIC_PAIRS = ((263, 33), (362, 133), (327, 98), (454, 234))
#: Outer and inner eye corners: the upper anchors.
EYE_CORNERS = (33, 133, 362, 263)
#: Nose wings and the point below the nose: the lower anchors.
NOSE_BASE = (98, 327, 2)
#: Outer eye corners (subject's right, left): the scale reference.
OUTER_EYE_CORNERS = (33, 263)
#: MediaPipe landmarks that expressions barely move: forehead, nose bridge and base, eye
#: corners, the upper face contour. Smoothing separates the head's rigid motion from the
#: expression with them (driving measures it on :data:`RIGID_LANDMARKS`).
STABLE_LANDMARKS = (
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 2, 98, 327,
    33, 133, 362, 263, 109, 338, 67, 297, 21, 251, 162, 389, 127, 356, 234, 454,
)  # fmt: skip
#: The rigid core of :data:`STABLE_LANDMARKS`, what driving measures the head's motion on:
#: nose bridge and tip, eye corners, the face's sides at the temples. The forehead follows
#: the brows (a raise read as 2.5 degrees of nod and a 3 % zoom of a still head) and the
#: nostril wings a sneer; over the sample clips their residual after a rigid fit is 2-4
#: times that of these points.
RIGID_LANDMARKS = (168, 6, 197, 195, 5, 4, 133, 362, 33, 263, 127, 356, 234, 454, 162, 389)
#: Mean adult distance between the outer eye corners (biocular width), metres.
OUTER_EYE_CORNER_DISTANCE_M = 0.09
#: Angle between the nose-base-to-eyes direction and head +y, about head +x. Calibrated so
#: that the human sample portraits and the sample videos' first frames average zero pitch.
NOSE_TO_EYES_TILT_DEG = 19.0
#: Rotation of a frontal, upright head (camera on +z looking at it, image +y down).
FRONTAL = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class HeadPose:
    """Head-to-camera transform.

    Attributes:
        rotation: [3, 3] head-to-camera rotation.
        translation: [3] head-space origin in camera space (FLAME units scaled as the world).
    """

    rotation: np.ndarray
    translation: np.ndarray

    def yaw_pitch_roll_deg(self) -> tuple[float, float, float]:
        """Euler angles of the head relative to frontal, in degrees.

        ``rotation = FRONTAL @ Ry(yaw) @ Rx(pitch) @ Rz(roll)`` about the head's own axes:
        positive yaw turns the face towards the subject's left (the viewer's right),
        positive pitch tilts the face down, positive roll tilts the head towards the
        subject's right shoulder.
        """
        relative = FRONTAL.T @ self.rotation
        yaw = math.atan2(relative[0, 2], relative[2, 2])
        pitch = math.asin(float(np.clip(-relative[1, 2], -1.0, 1.0)))
        roll = math.atan2(relative[1, 0], relative[1, 1])
        return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)

    def camera(self, intrinsics: np.ndarray, width: int, height: int) -> Camera:
        """The camera that sees the head from this pose: head space is its world space."""
        return Camera(intrinsics, self.rotation, self.translation, width, height)


def head_rotation(landmarks: np.ndarray) -> np.ndarray:
    """[3, 3] head-to-camera rotation from [N, 3] pixel landmarks (columns: head axes)."""
    points = landmarks.astype(np.float64)
    left = points[[pair[0] for pair in SYMMETRIC_PAIRS]]
    right = points[[pair[1] for pair in SYMMETRIC_PAIRS]]
    across = left - right
    x_axis = _unit((across / np.linalg.norm(across, axis=1, keepdims=True)).sum(axis=0))
    up = points[list(EYE_CORNERS)].mean(axis=0) - points[list(NOSE_BASE)].mean(axis=0)
    up = _unit(up - x_axis * (up @ x_axis))
    forward = np.cross(x_axis, up)
    tilt = math.radians(NOSE_TO_EYES_TILT_DEG)
    y_axis = math.cos(tilt) * up + math.sin(tilt) * forward
    return np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)], axis=1)


def estimate_head_pose(
    landmarks: np.ndarray, intrinsics: np.ndarray, units_per_metre: float
) -> HeadPose:
    """Head pose from MediaPipe landmarks.

    Args:
        landmarks: [N, 3] landmarks in pixels of the image that ``intrinsics`` describes.
        intrinsics: [3, 3] pinhole intrinsics of that image.
        units_per_metre: world units per metre (FLAME's scale, 5 in GAGAvatar's convention).
    """
    points = landmarks.astype(np.float64)
    right_corner, left_corner = points[list(OUTER_EYE_CORNERS)]
    eye_distance_px = float(np.linalg.norm(left_corner - right_corner))
    focal = float(intrinsics[0, 0] + intrinsics[1, 1]) / 2.0
    depth = focal * OUTER_EYE_CORNER_DISTANCE_M * units_per_metre / eye_distance_px
    origin_px = points[list(EYE_CORNERS + NOSE_BASE), :2].mean(axis=0)
    xy = (origin_px - intrinsics[:2, 2]) / np.diag(intrinsics)[:2] * depth
    return HeadPose(head_rotation(points), np.array([xy[0], xy[1], depth]))


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)
