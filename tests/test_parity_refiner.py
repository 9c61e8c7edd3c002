"""The style refiner (``core/model/style_refiner.py``) against the released ``StyleUNetLight``:
its state-dict layout (the fixture's manifests) and its outputs on the fixture's refiner input,
with the stored and with seeded random noise; and, on a small refiner, what training and the
live view rely on (gradients, batching, noise modes)."""

from __future__ import annotations

import pytest
import torch
from official_parity import ParityFixture, assert_close_to_scale, fill_by_recipe

from core.model.style_refiner import StyleRefiner

PREFIX = "upsampler."


@pytest.fixture(scope="module")
def fixture() -> ParityFixture:
    return ParityFixture.load()


@pytest.fixture(scope="module")
def refiner_input(fixture) -> torch.Tensor:
    """The fixture's refiner input, rebuilt from its seed: [1, 32, 512, 512] in [0, 1)."""
    seed = fixture.metadata["seeds"]["refiner_input"]
    return torch.rand((1, 32, 512, 512), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def outputs(fixture, refiner_input) -> dict[str, torch.Tensor]:
    """The refiner at the release's sizes with the recipe weights, run once per noise mode (a
    512 forward takes seconds on a CPU)."""
    refiner = StyleRefiner().eval()
    fill_by_recipe(refiner, PREFIX)
    with torch.inference_mode(), torch.random.fork_rng():
        fixed = refiner(refiner_input)
        torch.manual_seed(fixture.metadata["seeds"]["refiner_noise"])
        seeded = refiner(refiner_input, noise="random")
    return {"refiner.out_fixed_noise": fixed, "refiner.out_seeded_noise": seeded}


def test_the_rebuilt_input_is_the_fixtures(fixture, refiner_input):
    check = fixture.tensors["refiner.input_check"]  # sum(x), sum(x^2), the first 8 values
    sums = torch.stack([refiner_input.sum(), refiner_input.square().sum()])
    torch.testing.assert_close(sums, check[:2], rtol=1e-6, atol=0.0)
    assert torch.equal(refiner_input.flatten()[:8], check[2:])


@pytest.mark.parametrize("name", ["refiner.out_fixed_noise", "refiner.out_seeded_noise"])
def test_the_output_is_the_releases(fixture, outputs, name):
    stored, computed = fixture.expected(name, outputs[name])
    assert_close_to_scale(computed, stored, name)


@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_the_state_dict_is_the_releases_upsampler(fixture, which):
    rows = [row for row in fixture.manifest(which) if row["name"].startswith(PREFIX)]
    with torch.device("meta"):
        refiner = StyleRefiner()
    ours = [(name, list(tensor.shape)) for name, tensor in refiner.state_dict().items()]
    assert ours == [(row["name"].removeprefix(PREFIX), row["shape"]) for row in rows]
    buffers = {name for name, _ in refiner.named_buffers()}
    assert buffers == {row["name"].removeprefix(PREFIX) for row in rows if row["kind"] == "buffer"}
    assert all(parameter.dtype == torch.float32 for parameter in refiner.parameters())


def small_refiner() -> StyleRefiner:
    """A 32 px refiner of a few channels (the release's structure), its weights by the recipe
    (its noise strengths start at zero otherwise, as the release's, which hides the noise)."""
    refiner = StyleRefiner(
        in_channels=8,
        image_size=32,
        style_dim=16,
        mlp_layers=2,
        encoder_widths={4: 8, 8: 8, 16: 4, 32: 4},
        decoder_widths={4: 16, 8: 16, 16: 8, 32: 8},
    )
    fill_by_recipe(refiner, PREFIX)
    return refiner


def small_input(batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand((batch, 8, 32, 32), generator=torch.Generator().manual_seed(seed))


def test_gradients_reach_the_input_and_every_used_parameter():
    refiner = small_refiner()
    features = small_input().requires_grad_()
    refiner(features, noise="random").square().mean().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert (features.grad != 0).float().mean() > 0.99
    without = {
        name for name, parameter in refiner.named_parameters() if parameter.grad is None or not parameter.grad.any()
    }
    assert without == {name for name, _ in refiner.toRGB.named_parameters(prefix="toRGB")}  # unused, as in the release


def test_the_gradient_is_the_derivative_despite_the_in_place_updates():
    refiner = StyleRefiner(2, 8, 4, 1, {4: 2, 8: 2}, {4: 3, 8: 3}).double()
    fill_by_recipe(refiner, PREFIX)
    features = torch.rand((1, 2, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.autograd.gradcheck(refiner, (features.requires_grad_(),))


def test_fixed_noise_is_deterministic_and_random_noise_is_not():
    refiner = small_refiner().eval()
    features = small_input()
    with torch.no_grad():
        fixed = refiner(features)
        assert fixed.shape == (1, 3, 32, 32) and fixed.min() >= 0 and fixed.max() <= 1
        assert torch.equal(refiner(features), fixed)
        first, second = refiner(features, noise="random"), refiner(features, noise="random")
        assert (first - second).abs().max() > 1e-4 and (first - fixed).abs().max() > 1e-4


def test_random_noise_is_drawn_from_the_given_generator_as_from_the_default_one():
    refiner = small_refiner().eval()
    features = small_input()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(7)
        default = refiner(features, noise="random")
        given = refiner(features, noise="random", generator=torch.Generator().manual_seed(7))
    assert torch.equal(given, default)


def test_batch_items_are_refined_independently():
    refiner = small_refiner().eval()
    features = small_input(batch=3)
    with torch.no_grad():
        together = refiner(features)
        alone = torch.cat([refiner(item[None]) for item in features])
    torch.testing.assert_close(together, alone, rtol=0.0, atol=1e-6)


def test_wrong_sizes_are_refused():
    with pytest.raises(ValueError, match="power of two"):
        StyleRefiner(image_size=96)
    with pytest.raises(ValueError, match="refiner input"):
        small_refiner()(torch.zeros(1, 8, 16, 16))
