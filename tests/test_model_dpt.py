"""The DPT decoder: four token grids to the local-feature plane."""

from __future__ import annotations

import torch

from core.config import load_config
from core.model.dpt import DptDecoder


def grids(batch: int, dim: int, side: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(batch, dim, side, side, generator=generator) for _ in range(4)]


def test_paper_sizes_give_a_296x296_plane_of_256_channels():
    config = load_config("paper").model
    decoder = DptDecoder(768, config.feature_dim, config.feature_plane_size)
    with torch.no_grad():
        plane = decoder(grids(1, 768, 37))
    assert plane.shape == (1, 256, 296, 296)
    assert torch.isfinite(plane).all()


def test_tiny_sizes_and_other_plane_sizes():
    config = load_config("tiny").model
    tokens = grids(2, 768, config.backbone_image_size // 14)
    assert DptDecoder(768, config.feature_dim, config.feature_plane_size)(tokens).shape == (2, 32, 32, 32)
    assert DptDecoder(768, 16, 27)(tokens).shape == (2, 16, 27, 27)  # not a multiple of the grid
    assert DptDecoder(384, 16, 40)(grids(1, 384, 5)).shape == (1, 16, 40, 40)  # odd grid: x0.5 rounds up


def test_gradients_reach_every_parameter_and_every_layer():
    torch.manual_seed(0)
    decoder = DptDecoder(64, 16, 32)
    tokens = [grid.requires_grad_() for grid in grids(2, 64, 4)]
    decoder(tokens).square().mean().backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(grid.grad.abs().sum() > 0 for grid in tokens)


def test_the_shallowest_grid_is_the_finest_and_acts_locally():
    torch.manual_seed(0)
    decoder = DptDecoder(64, 16, 32).eval()
    tokens = grids(1, 64, 4)
    before = decoder(tokens)
    tokens[0][..., 0, 0] += 10.0  # change the top-left token of the shallowest grid only
    changed = (decoder(tokens) - before).abs().sum(dim=1)[0]
    assert changed[:4, :4].min() > 0  # its own 8x8 cells react
    assert changed[-4:, -4:].max() == 0  # far cells see it only through the coarser grids, which are unchanged
