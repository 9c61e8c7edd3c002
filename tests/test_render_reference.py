"""The differentiable reference: autograd gradients checked numerically, banding invariance."""

from __future__ import annotations

import pytest
import torch

import core.render.reference as reference
from core.geometry.camera import Camera
from core.model.release_gaussians import drawn_rotations
from core.render import Gaussians, render
from core.render.projection import drawn_covariance
from core.render.renderer import RenderBackendError
from core.render.reference import render_reference
from core.render.scenes import random_scene


def _tiny_scene() -> tuple[Gaussians, Camera]:
    camera = Camera.look_at((0.3, 0.2, 10.0), (0, 0, 0), 7, 6, 12.0)
    g = random_scene(4, camera, channels=2, seed=11, dtype=torch.float64)
    scales = g.scales * 4  # a few pixels wide so they overlap on a 7x6 image
    return Gaussians(g.means, g.quats, scales, g.opacities * 0.5 + 0.4, g.features), camera


def test_gradients_match_finite_differences_in_float64():
    g, camera = _tiny_scene()
    background = torch.tensor([0.2, 0.7], dtype=torch.float64)

    def rendered(means, quats, scales, opacities, features):
        out = render_reference(Gaussians(means, quats, scales, opacities, features), camera, background)
        return out.features, out.alpha, out.depth

    names = ("means", "quats", "scales", "opacities", "features")
    inputs = tuple(getattr(g, name).clone().requires_grad_(True) for name in names)
    alpha = rendered(*inputs)[1]
    assert (alpha > 0.05).sum() >= 10  # the scene covers the image: the check is not vacuous
    assert torch.autograd.gradcheck(rendered, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_row_bands_do_not_change_the_image(monkeypatch):
    camera = Camera.look_at((0, 0, 9.5), (0, 0, 0), 48, 40, 12.0)
    g = random_scene(300, camera, channels=3, seed=5)
    whole = render_reference(g, camera)
    monkeypatch.setattr(reference, "ROW_BAND", 7)  # bands that cut through Gaussians and tiles
    banded = render_reference(g, camera)
    for name in ("features", "alpha", "depth"):
        torch.testing.assert_close(getattr(banded, name), getattr(whole, name), rtol=1e-5, atol=1e-6)


def test_explicit_covariances_draw_what_drawn_rotations_converts_and_pass_gradients_to_raw_quaternions():
    camera = Camera.look_at((0, 0, 9.5), (0, 0, 0), 48, 40, 12.0)
    g = random_scene(200, camera, channels=3, seed=3)
    raw = g.quats * torch.linspace(0.02, 1.5, len(g))[:, None]  # far from unit length, as the release's
    drawn_quats, drawn_scales = drawn_rotations(raw, g.scales)
    converted = render(Gaussians(g.means, drawn_quats, drawn_scales, g.opacities, g.features), camera, "reference")
    raw_quats, scales = raw.clone().requires_grad_(True), g.scales.clone().requires_grad_(True)
    explicit = render(g, camera, "reference", covariances=drawn_covariance(raw_quats, scales))
    assert (converted.alpha > 0.05).sum() >= 200
    torch.testing.assert_close(explicit.features, converted.features, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(explicit.alpha, converted.alpha, atol=2e-5, rtol=1e-4)
    normalised = render(g, camera, "reference")  # what ignoring the raw quaternions' length draws
    assert (normalised.features - converted.features).abs().max() > 0.05
    explicit.features.sum().backward()
    assert raw_quats.grad.abs().sum() > 0 and scales.grad.abs().sum() > 0


def test_the_cpu_backend_refuses_covariances_in_one_line():
    camera = Camera.look_at((0, 0, 9.5), (0, 0, 0), 16, 16, 12.0)
    g = random_scene(5, camera)
    with pytest.raises(RenderBackendError, match="drawn_rotations") as error:
        render(g, camera, "cpu", covariances=drawn_covariance(g.quats, g.scales))
    assert "\n" not in str(error.value)
