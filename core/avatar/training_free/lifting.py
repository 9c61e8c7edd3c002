"""MediaPipe landmarks of the crop lifted into head space, and the source camera.

The crop camera has the configured normalised focal length (``fx = fy = f_n * S / 2``,
principal point at the centre) and the head pose of :mod:`core.tracking.head_pose` as
its extrinsic, so head space is the avatar's world space (FLAME's axes, scaled units).
MediaPipe's depth ``z`` is in the pixel scale of ``x``: at the head's depth ``Z0`` one
pixel spans ``Z0 / f`` world units, so a landmark's camera depth is
``Z0 + (z - z_anchor) * Z0 / f``, with ``z_anchor`` the mean depth of the head pose's
anchor points (whose centroid is the head-space origin). Every lifted point projects
back exactly onto its landmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import CameraConfig
from core.geometry.camera import Camera
from core.tracking.head_pose import EYE_CORNERS, NOSE_BASE, estimate_head_pose


@dataclass(frozen=True)
class LiftedFace:
    """A face's landmarks in head space and the camera that saw them.

    Attributes:
        points: [N, 3] float64 landmarks in head space (world units; +y up, +z out of the face).
        camera: the source view; its world space is head space.
    """

    points: np.ndarray
    camera: Camera


def lift_landmarks(
    landmarks: np.ndarray, size: int, camera_config: CameraConfig, units_per_metre: float
) -> LiftedFace:
    """Lift [N, 3] crop-pixel landmarks of a ``size`` x ``size`` crop into head space."""
    intrinsics = Camera.intrinsics(size, size, camera_config.focal_normalized)
    pose = estimate_head_pose(landmarks, intrinsics, units_per_metre)
    camera = pose.camera(intrinsics, size, size)
    pixels = landmarks.astype(np.float64)
    focal = intrinsics[0, 0]
    head_depth = pose.translation[2]
    anchor_depth = pixels[list(EYE_CORNERS + NOSE_BASE), 2].mean()
    depth = head_depth + (pixels[:, 2] - anchor_depth) * head_depth / focal
    in_camera = np.column_stack(
        [(pixels[:, :2] - intrinsics[:2, 2]) / focal * depth[:, None], depth]
    )  # [N, 3]
    return LiftedFace((in_camera - camera.t) @ camera.R, camera)
