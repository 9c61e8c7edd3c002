"""The Gaussians container: validation, concatenation, selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.render import Gaussians


def _gaussians(n: int, channels: int = 3, offset: float = 0.0) -> Gaussians:
    return Gaussians(
        means=torch.arange(3 * n, dtype=torch.float32).reshape(n, 3) + offset,
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.1),
        opacities=torch.linspace(0.1, 0.9, n),
        features=torch.rand(n, channels),
    )


def test_shapes_are_checked_against_the_means():
    good = _gaussians(4)
    with pytest.raises(ValueError, match="quats"):
        Gaussians(good.means, good.quats[:3], good.scales, good.opacities, good.features)
    with pytest.raises(ValueError, match="scales"):
        Gaussians(good.means, good.quats, good.scales[:, :2], good.opacities, good.features)
    with pytest.raises(ValueError, match="features"):
        Gaussians(good.means, good.quats, good.scales, good.opacities, good.features[:, :0])
    with pytest.raises(ValueError, match="float64"):
        Gaussians(good.means, good.quats, good.scales, good.opacities.double(), good.features)


def test_numpy_arrays_become_tensors():
    n = 2
    g = Gaussians(np.zeros((n, 3), np.float32), np.ones((n, 4), np.float32), np.ones((n, 3), np.float32),
                  np.ones(n, np.float32), np.ones((n, 32), np.float32))
    assert isinstance(g.means, torch.Tensor) and len(g) == n and g.num_channels == 32


def test_cat_keeps_order_and_rejects_mixed_channels():
    head, shoulders = _gaussians(3), _gaussians(2, offset=100.0)
    both = Gaussians.cat([head, shoulders])
    assert len(both) == 5
    torch.testing.assert_close(both.means[3:], shoulders.means)
    torch.testing.assert_close(both.features[:3], head.features)
    with pytest.raises(ValueError, match="channel"):
        Gaussians.cat([head, _gaussians(2, channels=32)])


@pytest.mark.parametrize(
    "index, expected",
    [
        (torch.tensor([True, False, True, False]), [0, 2]),
        (np.array([3, 1]), [3, 1]),
        ([2], [2]),
        ([], []),
        (slice(1, 3), [1, 2]),
    ],
)
def test_select_by_mask_indices_and_slice(index, expected):
    g = _gaussians(4)
    picked = g.select(index)
    assert len(picked) == len(expected)
    torch.testing.assert_close(picked.opacities, g.opacities[expected])
    torch.testing.assert_close(picked.features, g.features[expected])


def test_select_rejects_a_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match="boolean index"):
        _gaussians(4).select(torch.tensor([True, False]))


def test_empty_to_and_detach():
    empty = Gaussians.empty(32)
    assert len(empty) == 0 and empty.num_channels == 32
    g = _gaussians(3)
    assert g.to(dtype=torch.float64).dtype == torch.float64
    g.means.requires_grad_(True)
    assert not g.detach().means.requires_grad
