"""The OMG-Avatar release's camera: ``[R | T]`` matrices, its projection to NDC, and the
conversion to and from our OpenCV :class:`~core.geometry.camera.Camera`.

A release camera ("transform", ``transform_matrix`` in its driver files) is ``[3, 4] = [R | T]``
in pytorch3d's row-vector convention: a world point ``p`` (FLAME x5) is at ``p @ R + T`` in
pytorch3d view space (+x left, +y up, +z forward); the camera centre is ``-R T``. Intrinsics are
fixed: normalised focal 12 (``tan(fov / 2) = 1 / 12``), a square 512 image, near 0.01, far 100.

Its projection (used for feature sampling and the occlusion test) builds a 4x4 row-vector view
matrix (R above, T in the bottom row, the x and y columns negated: OpenCV-like x right, y down),
multiplies it by the transposed perspective matrix and divides by w (the view depth):
``ndc_x = 12 x / z``, ``ndc_y = 12 y / z`` (x, y, z OpenCV camera coordinates) and
``ndc_z = f / (f - n) - f n / ((f - n) z)``; normalised image coordinates are
``clamp(ndc_xy / 2 + 1 / 2, 0, 1)`` (u right, v down; pixel = ``n * 512``). All of it runs in
float32 through the same 4x4 matrices as the release, because its occlusion test normalises
``ndc_z``, whose spread over a head is only ~1e-4, and so depends on the last bits.

The equivalent OpenCV camera: ``R_cv = diag(-1, -1, 1) R^T``, ``t_cv = diag(-1, -1, 1) T``,
``K = Camera.intrinsics(512, 512, 12)``; then ``Camera.project`` gives ``512 * n``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from core.geometry.camera import Camera

RELEASE_FOCAL = 12.0  # normalised focal length (1 / tan(fov / 2))
RELEASE_ZNEAR = 0.01
RELEASE_ZFAR = 100.0
RELEASE_IMAGE_SIZE = 512
_FLIP_XY = np.diag([-1.0, -1.0, 1.0])  # pytorch3d view axes <-> OpenCV camera axes


def release_view_matrix(transform: Tensor) -> Tensor:
    """[B, 3, 4] ``[R | T]`` -> [B, 4, 4] row-vector view matrix with the x, y columns negated."""
    _check_transform(transform)
    view = transform.new_zeros(transform.shape[0], 4, 4)
    view[:, 3, 3] = 1.0
    view[:, :3, :3] = transform[:, :, :3]
    view[:, 3, :3] = transform[:, :, 3]
    view[:, :, :2] *= -1.0
    return view


def release_perspective(
    focal: float = RELEASE_FOCAL, znear: float = RELEASE_ZNEAR, zfar: float = RELEASE_ZFAR,
    device: torch.device | str = "cpu",
) -> Tensor:  # fmt: skip
    """[4, 4] float32 column-vector perspective matrix (x, y scaled by the focal length, z mapped
    to [0, 1] between the planes, w = z)."""
    half_fov = math.atan(1.0 / focal)
    perspective = torch.zeros(4, 4, dtype=torch.float32, device=device)
    perspective[0, 0] = perspective[1, 1] = 1.0 / math.tan(half_fov)
    perspective[2, 2] = zfar / (zfar - znear)
    perspective[2, 3] = -(zfar * znear) / (zfar - znear)
    perspective[3, 2] = 1.0
    return perspective


def release_projection_matrix(transform: Tensor, focal: float = RELEASE_FOCAL) -> Tensor:
    """[B, 3, 4] ``[R | T]`` -> [B, 4, 4] row-vector world-to-clip matrix."""
    perspective = release_perspective(focal, device=transform.device).to(transform.dtype)
    return release_view_matrix(transform) @ perspective.transpose(0, 1)


def project_release(points: Tensor, transform: Tensor, focal: float = RELEASE_FOCAL) -> tuple[Tensor, Tensor]:
    """Project world points with release cameras.

    Args:
        points: [B, V, 3] world points (float32 for the release's rounding).
        transform: [B, 3, 4] ``[R | T]``.

    Returns:
        n_coords: [B, V, 2] normalised image coordinates in [0, 1] (u right, v down), clamped.
        ndc: [B, V, 3] NDC before clamping (x, y in [-1, 1] inside the image; z as above).
    """
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    clip = homogeneous @ release_projection_matrix(transform, focal)
    ndc = clip[..., :3] / clip[..., 3:4]
    return (ndc[..., :2] * 0.5 + 0.5).clamp(0.0, 1.0), ndc


def camera_from_release(
    transform: np.ndarray | Tensor, size: int = RELEASE_IMAGE_SIZE, focal: float = RELEASE_FOCAL
) -> Camera:
    """The OpenCV :class:`Camera` (``size`` x ``size`` pixels) seeing what ``transform`` [3, 4] sees."""
    matrix = _numpy_transform(transform)
    rotation, translation = matrix[:, :3], matrix[:, 3]
    K = Camera.intrinsics(size, size, focal)
    return Camera(K, _FLIP_XY @ rotation.T, _FLIP_XY @ translation, size, size)


def release_from_camera(camera: Camera) -> np.ndarray:
    """[3, 4] float64 ``[R | T]`` of an OpenCV camera; its intrinsics must be a centred square
    camera's (the release's focal is then ``camera.K[0, 0] / (size / 2)``, see
    :func:`release_focal`)."""
    release_focal(camera)
    rotation = (_FLIP_XY @ camera.R).T
    return np.concatenate([rotation, (_FLIP_XY @ camera.t)[:, None]], axis=1)


def release_focal(camera: Camera) -> float:
    """The normalised focal length of a centred square camera; ValueError for other cameras."""
    K, size = camera.K, camera.width
    centred = np.allclose(K[:2, 2], [size / 2, size / 2]) and K[0, 1] == 0 and np.allclose(K[2], [0, 0, 1])
    if camera.height != size or not centred or not np.isclose(K[0, 0], K[1, 1]):
        raise ValueError("a release camera is square and centred with equal focal lengths; this camera is not")
    return float(K[0, 0] / (size / 2))


def _numpy_transform(transform: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(transform, Tensor):
        transform = transform.detach().cpu().double().numpy()
    matrix = np.asarray(transform, dtype=np.float64)
    if matrix.shape != (3, 4):
        raise ValueError(f"a release camera is [3, 4] = [R | T], got shape {list(matrix.shape)}")
    return matrix


def _check_transform(transform: Tensor) -> None:
    if transform.dim() != 3 or transform.shape[1:] != (3, 4):
        raise ValueError(f"release cameras are [B, 3, 4] = [R | T], got shape {list(transform.shape)}")
