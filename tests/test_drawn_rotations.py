"""The released network's head Gaussians as its rasteriser draws them: raw quaternions (not unit
length) turned into unit quaternions and scales with the same covariance, checked against
gsplat's own pure-torch covariance (which normalises its quaternions, as every renderer here does)."""

from __future__ import annotations

import pytest
import torch
from gsplat.cuda._torch_impl import _quat_scale_to_covar_preci

from core.model.release_gaussians import MIN_DRAWN_SCALE, drawn_rotations
from core.render.projection import drawn_covariance


def gsplat_covariance(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    covariance, _ = _quat_scale_to_covar_preci(quats.double(), scales.double(), compute_preci=False, triu=False)
    return covariance


@pytest.mark.parametrize("length", [0.03, 0.3, 1.0])
def test_gsplat_draws_the_converted_gaussians_with_the_releases_covariance(length):
    generator = torch.Generator().manual_seed(0)
    raw = torch.nn.functional.normalize(torch.randn(2000, 4, generator=generator), dim=1) * length
    scales = torch.rand(2000, 3, generator=generator) * 0.05 + 1e-3
    quats, converted = drawn_rotations(raw, scales)
    expected = drawn_covariance(raw.double(), scales.double())
    assert torch.allclose(quats.norm(dim=1), torch.ones(2000), atol=1e-6)
    assert (gsplat_covariance(quats, converted) - expected).abs().max() < 1e-6 * expected.abs().max()
    if length == 1.0:  # unit quaternions: the release draws what gsplat draws from them directly
        assert (gsplat_covariance(raw, scales) - expected).abs().max() < 1e-6 * expected.abs().max()


def test_short_quaternions_draw_almost_axis_aligned_gaussians_unlike_their_normalised_selves():
    raw = torch.tensor([[0.02, 0.03, -0.04, 0.01]])
    scales = torch.tensor([[0.04, 0.01, 0.002]])
    quats, converted = drawn_rotations(raw, scales)
    drawn = gsplat_covariance(quats, converted)[0]
    normalised = gsplat_covariance(raw, scales)[0]
    off_diagonal = drawn - torch.diag(torch.diagonal(drawn))
    assert off_diagonal.abs().max() < 0.05 * drawn.abs().max()  # R(q) is close to the identity
    assert (normalised - drawn).abs().max() > 0.1 * drawn.abs().max()


def test_a_singular_drawn_matrix_still_gives_positive_scales():
    raw = torch.tensor([[0.5, 0.5, 0.5, 0.5]]) / 2**0.5  # |q|^2 = 1/2: R(q) has rank 1 or 2
    quats, scales = drawn_rotations(raw, torch.full((1, 3), 0.01))
    assert torch.isfinite(quats).all() and (scales >= MIN_DRAWN_SCALE * 0.999).all()
