"""The pinhole camera, its orbit helper, and its conversion to gsplat's inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection

from core.geometry.camera import Camera

SIZE = 512


def _head_points(count: int, seed: int = 0) -> np.ndarray:
    """[count, 3] points in a head-sized box around the origin (FLAME x5 units)."""
    return np.random.default_rng(seed).uniform(-0.8, 0.8, size=(count, 3))


def test_focal_12_convention_gives_3072_px_at_512():
    camera = Camera.orbit((0, 0, 0), 0, 0, 9.5, SIZE, SIZE, 12.0)
    assert camera.K[0, 0] == pytest.approx(3072.0)
    assert camera.K[1, 1] == pytest.approx(3072.0)
    assert tuple(camera.K[:2, 2]) == (256.0, 256.0)
    fov = 2 * math.degrees(math.atan(SIZE / 2 / camera.K[0, 0]))
    assert fov == pytest.approx(9.53, abs=0.01)


def test_frontal_camera_sees_flame_axes_as_expected():
    camera = Camera.orbit((0, 0, 0), 0, 0, 10.0, SIZE, SIZE, 12.0)
    np.testing.assert_allclose(camera.center, [0, 0, 10.0], atol=1e-12)
    (uv_target, uv_left, uv_up), depth = camera.project(np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]]))
    np.testing.assert_allclose(uv_target, [256, 256])
    assert uv_left[0] > 256  # the subject's left (+x) appears on the image's right
    assert uv_up[1] < 256  # +y is up, image rows grow downwards
    np.testing.assert_allclose(depth, 10.0)


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (45, 0), (-60, 10), (90, -30), (180, 45)])
def test_orbit_keeps_radius_and_looks_at_target(yaw, pitch):
    target = np.array([0.1, -0.2, 0.3])
    camera = Camera.orbit(target, yaw, pitch, 9.0, SIZE, 384, 12.0)
    assert np.linalg.norm(camera.center - target) == pytest.approx(9.0)
    np.testing.assert_allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(camera.R) == pytest.approx(1.0)
    uv, depth = camera.project(target[None])
    np.testing.assert_allclose(uv[0], [SIZE / 2, 384 / 2], atol=1e-9)
    assert depth[0] == pytest.approx(9.0)
    yaw_r, pitch_r = math.radians(yaw), math.radians(pitch)
    expected = [math.sin(yaw_r) * math.cos(pitch_r), math.sin(pitch_r), math.cos(yaw_r) * math.cos(pitch_r)]
    np.testing.assert_allclose(camera.center - target, 9.0 * np.array(expected), atol=1e-9)


def test_positive_pitch_looks_from_above_and_is_clamped():
    camera = Camera.orbit((0, 0, 0), 0, 30, 10.0, SIZE, SIZE, 12.0)
    assert camera.center[1] > 0
    top = Camera.orbit((0, 0, 0), 0, 120, 10.0, SIZE, SIZE, 12.0)
    assert top.center[1] == pytest.approx(10.0 * math.sin(math.radians(89.0)))


def test_project_accepts_numpy_and_torch_alike():
    camera = Camera.orbit((0, 0, 0), 20, 5, 9.5, SIZE, SIZE, 12.0)
    points = _head_points(50)
    uv_np, depth_np = camera.project(points)
    uv_t, depth_t = camera.project(torch.from_numpy(points))
    assert isinstance(uv_t, torch.Tensor) and uv_t.dtype == torch.float64
    np.testing.assert_allclose(uv_t.numpy(), uv_np, atol=1e-9)
    np.testing.assert_allclose(depth_t.numpy(), depth_np, atol=1e-12)


def test_resized_camera_scales_pixels():
    camera = Camera.orbit((0, 0, 0), 10, 0, 9.5, SIZE, SIZE, 12.0)
    half = camera.resized(256, 256)
    points = _head_points(10)
    np.testing.assert_allclose(half.project(points)[0], camera.project(points)[0] / 2, atol=1e-9)


def test_invalid_cameras_are_rejected():
    with pytest.raises(ValueError, match="coincide"):
        Camera.look_at((1, 2, 3), (1, 2, 3), SIZE, SIZE, 12.0)
    with pytest.raises(ValueError, match="up vector"):
        Camera.look_at((0, 5, 0), (0, 0, 0), SIZE, SIZE, 12.0)
    with pytest.raises(ValueError, match="shape"):
        Camera(np.eye(2), np.eye(3), np.zeros(3), SIZE, SIZE)
    with pytest.raises(ValueError, match="positive"):
        Camera(np.eye(3), np.eye(3), np.zeros(3), 0, SIZE)


@pytest.mark.parametrize("yaw, pitch, width, height", [(0, 0, 512, 512), (35, -12, 640, 480), (-70, 25, 300, 500)])
def test_gsplat_conversion_matches_gsplat_reference_projection(yaw, pitch, width, height):
    """gsplat's own pure-torch projection of our (viewmats, Ks) lands where we project."""
    camera = Camera.orbit((0.05, 0.1, -0.1), yaw, pitch, 9.5, width, height, 12.0)
    points = _head_points(500, seed=yaw + 100)
    means = torch.from_numpy(points).float()
    covars = (torch.eye(3) * 1e-4).expand(len(means), 3, 3).contiguous()
    viewmats, Ks = camera.to_gsplat()
    assert viewmats.shape == (1, 4, 4) and Ks.shape == (1, 3, 3)
    _radii, means2d, depths, _conics, _comp = _fully_fused_projection(
        means, covars, viewmats, Ks, width, height
    )
    uv, depth = camera.project(means.double())
    assert torch.allclose(means2d[0].double(), uv, atol=1e-4, rtol=0)
    assert torch.allclose(depths[0].double(), depth, atol=1e-5, rtol=0)
