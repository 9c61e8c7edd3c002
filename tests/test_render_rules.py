"""The rasterisation rules on hand-checkable scenes, for the cpu and reference backends alike:
analytic footprints, the alpha clamp, the exclusive early stop, expected depth, background,
and edge cases (no Gaussians, one pixel, behind the camera, zero opacity, degenerate scales)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.geometry.camera import Camera
from core.render import Gaussians, render
from core.render.constants import ALPHA_MAX, LOW_PASS, TRANSMITTANCE_MIN

BACKENDS = ["cpu", "reference"]
DISTANCE = 10.0
SIZE = 9  # odd: the principal point (4.5, 4.5) is the centre of pixel (4, 4)


def _camera(width: int = SIZE, height: int = SIZE) -> Camera:
    return Camera.look_at((0, 0, DISTANCE), (0, 0, 0), width, height, 12.0)


def _facing(depths, opacities, features, pixel_sigma: float = 1.0, camera: Camera | None = None) -> Gaussians:
    """Isotropic Gaussians on the optical axis at ``depths`` from the camera, ``pixel_sigma``
    pixels wide (before the low-pass)."""
    camera = camera or _camera()
    depths = torch.as_tensor(depths, dtype=torch.float64)
    n = len(depths)
    means = torch.zeros(n, 3, dtype=torch.float64)
    means[:, 2] = DISTANCE - depths
    sigma = (pixel_sigma * depths / camera.K[0, 0])[:, None].expand(n, 3)
    return Gaussians(means, torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64).repeat(n, 1), sigma.clone(),
                     torch.as_tensor(opacities, dtype=torch.float64),
                     torch.as_tensor(features, dtype=torch.float64).reshape(n, -1))


def _render(g: Gaussians, backend: str, camera: Camera | None = None, background=0.0):
    with torch.no_grad():
        out = render(g, camera or _camera(), backend, background=background)
    return out.features.double(), out.alpha.double(), out.depth.double()


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_gaussian_has_the_analytic_footprint(backend):
    opacity, background = 0.6, 0.25
    g = _facing([DISTANCE], [opacity], [[1.0, 0.5, 0.0]])
    features, alpha, depth = _render(g, backend, background=background)
    variance = 1.0 + LOW_PASS
    for dx, dy in [(0, 0), (1, 0), (0, -2), (2, 1), (3, 0)]:
        expected = opacity * math.exp(-0.5 * (dx * dx + dy * dy) / variance)
        assert alpha[4 + dy, 4 + dx].item() == pytest.approx(expected, rel=1e-4)
        composited = 0.5 * expected + background * (1 - expected)
        assert features[4 + dy, 4 + dx, 1].item() == pytest.approx(composited, rel=1e-4)
    # (4, 0) from the centre is 3.5 sigma away: outside the 3-sigma footprint.
    assert alpha[4, 8].item() == 0.0 and features[4, 8, 0].item() == background
    assert depth[4, 4].item() == pytest.approx(DISTANCE, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_alpha_is_clamped(backend):
    _, alpha, _ = _render(_facing([DISTANCE], [1.0], [[1.0]]), backend)
    assert alpha[4, 4].item() == pytest.approx(ALPHA_MAX, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compositing_stops_before_the_gaussian_that_would_pass_the_threshold(backend):
    # Alpha 0.95 each: transmittance 0.05, 2.5e-3, 1.25e-4, then 6.25e-6 < 1e-4, so the
    # fourth and fifth (feature 100) must not show at the centre pixel.
    depths = [9.0, 9.5, 10.0, 10.5, 11.0]
    g = _facing(depths, [0.95] * 5, [[1.0], [2.0], [3.0], [100.0], [100.0]], pixel_sigma=0.01)
    features, alpha, depth = _render(g, backend)
    weights = np.array([0.95, 0.05 * 0.95, 0.05**2 * 0.95])
    transmittance = 0.05**3
    assert transmittance >= TRANSMITTANCE_MIN > transmittance * 0.05
    assert features[4, 4, 0].item() == pytest.approx(weights @ [1.0, 2.0, 3.0], rel=1e-5)
    assert alpha[4, 4].item() == pytest.approx(1 - transmittance, rel=1e-6)
    assert depth[4, 4].item() == pytest.approx(weights @ depths[:3] / weights.sum(), rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_order_is_by_depth_not_by_index(backend):
    g = _facing([10.0, 9.0], [0.5, 0.5], [[1.0], [0.0]], pixel_sigma=0.01)  # the second is in front
    features, _, depth = _render(g, backend)
    assert features[4, 4, 0].item() == pytest.approx(0.5 * 0.5, rel=1e-5)
    assert depth[4, 4].item() == pytest.approx((0.5 * 9.0 + 0.25 * 10.0) / 0.75, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_gaussians_gives_the_background(backend):
    camera = _camera(17, 5)
    features, alpha, depth = _render(Gaussians.empty(3), backend, camera, background=[0.1, 0.2, 0.3])
    assert features.shape == (5, 17, 3) and alpha.shape == depth.shape == (5, 17)
    torch.testing.assert_close(features, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64).expand(5, 17, 3))
    assert alpha.abs().max() == 0 and depth.abs().max() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_pixel_image(backend):
    camera = _camera(1, 1)
    features, alpha, depth = _render(_facing([DISTANCE], [0.5], [[2.0, 4.0]], camera=camera), backend, camera)
    assert features.shape == (1, 1, 2)
    assert alpha.item() == pytest.approx(0.5, rel=1e-5)
    assert features[0, 0, 1].item() == pytest.approx(2.0, rel=1e-5)
    assert depth.item() == pytest.approx(DISTANCE, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussians_behind_the_camera_or_transparent_are_invisible(backend):
    # Behind the camera, just behind it, and just in front but within the near plane.
    behind = _facing([-1.0, -0.005, 0.005], [1.0, 1.0, 1.0], [[5.0]] * 3, pixel_sigma=3.0)
    transparent = _facing([DISTANCE], [0.0], [[5.0]], pixel_sigma=3.0)
    for g in (behind, transparent):
        features, alpha, _ = _render(g, backend)
        assert alpha.abs().max() == 0 and features.abs().max() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_scales_give_the_low_pass_dot(backend):
    g = _facing([DISTANCE], [0.8], [[1.0]], pixel_sigma=0.0)
    _, alpha, _ = _render(g, backend)
    assert alpha[4, 4].item() == pytest.approx(0.8, rel=1e-5)
    assert alpha[4, 5].item() == pytest.approx(0.8 * math.exp(-0.5 / LOW_PASS), rel=1e-4)
    assert alpha[4, 6].item() == 0.0  # 2 px = 3.65 low-pass sigmas


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gaussian_cut_by_the_image_edge(backend):
    camera = _camera(9, 9)
    g = _facing([DISTANCE], [0.7], [[1.0]], pixel_sigma=2.0, camera=camera)
    shifted = Gaussians(g.means + torch.tensor([4.5 * DISTANCE / camera.K[0, 0], 0, 0], dtype=torch.float64),
                        g.quats, g.scales, g.opacities, g.features)  # centred on the right edge
    _, alpha, _ = _render(shifted, backend, camera)
    tan_x = 4.5 / camera.K[0, 0]  # off-axis, the Jacobian stretches x by (1 + tan^2)
    variance_x = 4.0 * (1 + tan_x**2) + LOW_PASS
    assert alpha[4, 8].item() == pytest.approx(0.7 * math.exp(-0.5 * 0.25 / variance_x), rel=1e-5)
    assert alpha[4, 0].item() == 0.0


def test_unknown_or_unavailable_backends_are_user_errors():
    from core.render import RenderBackendError

    with pytest.raises(RenderBackendError, match="unknown"):
        render(Gaussians.empty(3), _camera(), "opengl")
    if not torch.cuda.is_available():
        with pytest.raises(RenderBackendError, match="CUDA"):
            render(Gaussians.empty(3), _camera(), "gsplat")
