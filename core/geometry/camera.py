"""Pinhole camera with explicit intrinsics and world-to-camera extrinsics.

Conventions (the ones GAGAvatar uses and the paper follows):

* World space is FLAME's: +x is the subject's left, +y up, +z out of the face towards
  a frontal viewer.
* Camera space is OpenCV's: +x right, +y down, +z forward (into the scene). The
  extrinsic maps world to camera: ``x_cam = R @ x_world + t``.
* Pixel coordinates are continuous with pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``,
  so the principal point of a centred camera is ``(W/2, H/2)``; this is gsplat's
  convention too.
* The normalised focal length ``f_n`` relates to pixels by ``fx = fy = f_n * min(W, H) / 2``
  (``f_n = 12`` gives 3072 px at 512x512, a field of view of about 9.5 degrees).

``Camera.to_gsplat`` is the one place that converts to gsplat's ``(viewmats, Ks)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera.

    Attributes:
        K: [3, 3] intrinsics in pixels.
        R: [3, 3] world-to-camera rotation.
        t: [3] world-to-camera translation.
        width, height: image size in pixels.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        for name, shape in (("K", (3, 3)), ("R", (3, 3)), ("t", (3,))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Camera.{name} must have shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")

    # ------------------------------------------------------------------ construction
    @staticmethod
    def intrinsics(width: int, height: int, focal_normalized: float) -> np.ndarray:
        """[3, 3] intrinsics of a centred camera with the normalised focal length."""
        focal = focal_normalized * min(width, height) / 2.0
        return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])

    @classmethod
    def look_at(
        cls,
        eye: ArrayLike,
        target: ArrayLike,
        width: int,
        height: int,
        focal_normalized: float,
        up: ArrayLike = (0.0, 1.0, 0.0),
    ) -> "Camera":
        """A centred camera at ``eye`` looking at ``target`` with world ``up`` pointing up."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        forward = target - eye
        if np.linalg.norm(forward) < 1e-12:
            raise ValueError("camera eye and target coincide")
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("camera looks along its up vector; choose another up")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])
        return cls(cls.intrinsics(width, height, focal_normalized), R, -R @ eye, width, height)

    @classmethod
    def orbit(
        cls,
        target: ArrayLike,
        yaw_deg: float,
        pitch_deg: float,
        radius: float,
        width: int,
        height: int,
        focal_normalized: float,
    ) -> "Camera":
        """A camera on a sphere of ``radius`` around ``target``.

        Yaw 0 and pitch 0 is the frontal view from +z; positive yaw moves the camera
        towards +x (the subject's left), positive pitch moves it up. Pitch is clamped to
        +-89 degrees so the view never flips.
        """
        yaw = math.radians(yaw_deg)
        pitch = math.radians(float(np.clip(pitch_deg, -89.0, 89.0)))
        direction = np.array(
            [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
        )
        target = np.asarray(target, dtype=np.float64)
        return cls.look_at(target + radius * direction, target, width, height, focal_normalized)

    # ------------------------------------------------------------------ properties
    @property
    def center(self) -> np.ndarray:
        """[3] camera centre in world space."""
        return -self.R.T @ self.t

    @property
    def viewmat(self) -> np.ndarray:
        """[4, 4] world-to-camera matrix."""
        view = np.eye(4)
        view[:3, :3] = self.R
        view[:3, 3] = self.t
        return view

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for an image of another size (intrinsics scaled per axis)."""
        scale = np.diag([width / self.width, height / self.height, 1.0])
        return Camera(scale @ self.K, self.R, self.t, width, height)

    # ------------------------------------------------------------------ projection
    def world_to_camera(self, points: ArrayLike) -> ArrayLike:
        """[..., 3] world points -> [..., 3] camera-space points (numpy or torch in, same out)."""
        if not isinstance(points, torch.Tensor):
            points = np.asarray(points)
        R, t = _like(self.R, points), _like(self.t, points)
        return points @ R.T + t

    def project(self, points: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        """Project [..., 3] world points to pixels.

        Returns:
            uv: [..., 2] pixel coordinates.
            depth: [...] camera-space z (positive in front of the camera). Points at or
                behind the camera get non-finite or meaningless uv; check ``depth > 0``.
        """
        cam = self.world_to_camera(points)
        depth = cam[..., 2]
        K = _like(self.K, cam)
        uv = cam[..., :2] / depth[..., None] * K.diagonal()[:2] + K[:2, 2]
        return uv, depth

    def to_gsplat(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """gsplat's camera inputs: viewmats [1, 4, 4] (world-to-camera) and Ks [1, 3, 3]."""
        viewmats = torch.as_tensor(self.viewmat, dtype=dtype, device=device)[None]
        Ks = torch.as_tensor(self.K, dtype=dtype, device=device)[None]
        return viewmats, Ks


def _like(value: np.ndarray, reference: ArrayLike) -> ArrayLike:
    """``value`` as the same array kind, dtype and device as ``reference``."""
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)
    return value.astype(np.result_type(reference.dtype, np.float32), copy=False)
