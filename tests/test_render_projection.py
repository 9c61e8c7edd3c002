"""EWA projection: the reference against gsplat's own pure-torch projection, and the compiled
cpu projection against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

from core.geometry.camera import Camera
from core.render import Gaussians
from core.render.constants import LOW_PASS, NEAR_PLANE
from core.render.cpu import _project
from core.render.projection import covariance_3d, project_gaussians
from core.render.scenes import portrait_camera, random_scene


def _camera() -> Camera:
    """An oblique, non-square camera so that no axis is special."""
    return Camera.orbit((0.05, -0.1, 0.02), 25.0, -10.0, 9.5, 320, 240, 12.0)


def _scene(dtype=torch.float64) -> Gaussians:
    """Random Gaussians, some beyond the image edges, plus some behind the camera."""
    camera = _camera()
    g = random_scene(400, camera, seed=3, dtype=dtype)
    behind = torch.as_tensor(camera.center + 2.0 * camera.R[2] * -1, dtype=dtype)  # 2 units behind
    means = g.means.clone()
    means[:20] = behind + 0.1 * torch.randn(20, 3, dtype=dtype)
    return Gaussians(means, g.quats, g.scales, g.opacities, g.features)


def test_covariance_matches_gsplat():
    g = _scene()
    covars, _ = _quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    torch.testing.assert_close(covariance_3d(g.quats, g.scales), covars, rtol=1e-12, atol=1e-15)


def test_reference_projection_matches_gsplat_within_1e4_px():
    g, camera = _scene(), _camera()
    covars, _ = _quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    viewmats, Ks = camera.to_gsplat(dtype=torch.float64)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        g.means, covars, viewmats, Ks, camera.width, camera.height, eps2d=LOW_PASS, near_plane=NEAR_PLANE
    )
    ours = project_gaussians(g, camera)
    in_front = depths[0] > NEAR_PLANE
    assert (~in_front).sum() >= 20 and not ours.visible[~in_front].any()
    assert not (ours.visible & ~(radii[0] > 0).all(-1)).any()  # our 3-sigma box lies in their 3.33-sigma one
    assert (means2d[0][in_front] - ours.means2d[in_front]).abs().max() < 1e-4
    torch.testing.assert_close(ours.conics[in_front], conics[0][in_front], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours.depths, depths[0])


def test_reference_projection_is_close_to_gsplat_in_float32():
    g, camera = _scene(torch.float32), _camera()
    covars, _ = _quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    viewmats, Ks = camera.to_gsplat()
    _, means2d, _, _, _ = _fully_fused_projection(g.means, covars, viewmats, Ks, camera.width, camera.height)
    ours = project_gaussians(g, camera)
    assert (means2d[0][ours.visible] - ours.means2d[ours.visible]).abs().max() < 1e-3


def test_cpu_projection_matches_the_reference():
    g, camera = _scene(torch.float32), _camera()
    arrays = (getattr(g, name).numpy() for name in ("means", "quats", "scales", "opacities"))
    splats, boxes = _project(*arrays, camera.R, camera.t, camera.K, camera.width, camera.height)
    reference = project_gaussians(g.to(dtype=torch.float64), camera)
    kept = boxes[:, 0] <= boxes[:, 1]
    assert kept.any() and not kept[:20].any()  # the ones behind the camera are culled
    assert not (kept & ~reference.visible.numpy()).any()
    np.testing.assert_allclose(splats[kept, :2], reference.means2d[kept].numpy(), atol=1e-3)
    np.testing.assert_allclose(splats[kept, 2:5], reference.conics[kept].numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(splats[kept, 6], reference.depths[kept].numpy(), rtol=1e-6)


def test_degenerate_scales_and_zero_quaternion_project_to_the_low_pass_dot():
    camera = portrait_camera(64)
    centre = camera.center + 9.5 * camera.R[2]
    means = torch.tensor(centre[None], dtype=torch.float32)
    g = Gaussians(means, torch.zeros(1, 4), torch.zeros(1, 3), torch.ones(1), torch.ones(1, 3))
    projection = project_gaussians(g.to(dtype=torch.float64), camera)
    torch.testing.assert_close(projection.covars2d[0], LOW_PASS * torch.eye(2, dtype=torch.float64))
    assert projection.visible.item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_is_differentiable(dtype):
    g = random_scene(8, _camera(), dtype=dtype)
    for name in ("means", "quats", "scales"):
        getattr(g, name).requires_grad_(True)
    projection = project_gaussians(g, _camera())
    (projection.means2d.sum() + projection.conics.sum()).backward()
    assert all(torch.isfinite(getattr(g, name).grad).all() for name in ("means", "quats", "scales"))
