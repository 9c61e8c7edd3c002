"""The training loss: SSIM as the evaluation computes it, each weight scaling its own term,
the offset regulariser, and the perceptual term from an LPIPS weights file or off with a warning."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.config import LossConfig
from core.evaluation.metrics import load_lpips
from core.evaluation.metrics import ssim as ssim_metric
from core.train.losses import PARTS, PerceptualLoss, ReconstructionLoss, load_perceptual, ssim
from lpips_stand_in import write_stand_in_lpips

WEIGHTS = LossConfig(l2=10.0, ssim=1.0, perceptual=0.1, offset=0.1)


def images(batch: int = 2, size: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, 3, size, size, generator=generator, dtype=torch.float64)
    noisy = (target + 0.2 * torch.randn(target.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return noisy, target


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    return write_stand_in_lpips(tmp_path_factory.mktemp("lpips") / "stand_in.safetensors", "vgg")


def test_ssim_matches_the_evaluation_metric():
    image, target = images()
    ours = ssim(image, target)
    for item in range(2):
        expected = ssim_metric(image[item].permute(1, 2, 0).numpy(), target[item].permute(1, 2, 0).numpy())
        assert ours[item].item() == pytest.approx(expected, abs=1e-6)
    assert ssim(target, target).allclose(torch.ones(2, dtype=torch.float64))


def test_identical_images_and_no_offsets_give_zero_loss():
    _, target = images()
    total, parts = ReconstructionLoss(WEIGHTS, None)(target, target, target, torch.zeros(2, 5, 3))
    assert total.item() == pytest.approx(0.0, abs=1e-12)
    assert set(parts) == set(PARTS)


@pytest.mark.parametrize("term", ["l2", "ssim", "offset"])
def test_each_weight_scales_only_its_own_term(term):
    image, target = images()
    offsets = torch.randn(2, 5, 3, dtype=torch.float64)
    base = ReconstructionLoss(WEIGHTS, None)(image, image, target, offsets)[1]
    tripled = dataclasses.replace(WEIGHTS, **{term: 3 * getattr(WEIGHTS, term)})
    total, parts = ReconstructionLoss(tripled, None)(image, image, target, offsets)
    assert base[term] > 0
    for name in PARTS:
        expected = 3 * base[name] if name == term else base[name]
        assert parts[name].item() == pytest.approx(expected.item(), rel=1e-12)
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-12)


def test_coarse_and_refined_images_both_count():
    image, target = images()
    offsets = torch.zeros(2, 5, 3, dtype=torch.float64)
    loss = ReconstructionLoss(WEIGHTS, None)
    only_coarse_wrong = loss(image, target, target, offsets)[0]
    both_wrong = loss(image, image, target, offsets)[0]
    assert both_wrong.item() == pytest.approx(2 * only_coarse_wrong.item(), rel=1e-12)


def test_offset_term_is_the_mean_squared_vertex_offset():
    _, target = images()
    offsets = torch.zeros(2, 4, 3, dtype=torch.float64)
    offsets[0, 0] = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # ||o||^2 = 25 on one of 8 vertices
    parts = ReconstructionLoss(WEIGHTS, None)(target, target, target, offsets)[1]
    assert parts["offset"].item() == pytest.approx(0.1 * 25 / 8)


def test_perceptual_term_is_lpips_of_the_weights_file_and_passes_gradients(lpips_file):
    image, target = (x.float() for x in images())
    lpips = load_perceptual(str(lpips_file))
    assert lpips is not None and lpips.path == lpips_file
    perceptual = PerceptualLoss(lpips.network)
    image.requires_grad_(True)
    total, parts = ReconstructionLoss(WEIGHTS, perceptual)(image, image, target, torch.zeros(2, 5, 3))
    metric = load_lpips(lpips_file)
    expected = sum(metric(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy()) for a, b in zip(image.detach(), target)) / 2
    assert parts["perceptual"].item() == pytest.approx(2 * 0.1 * expected, rel=1e-5)
    total.backward()
    assert image.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in perceptual.parameters())


def test_without_a_perceptual_file_the_term_is_off_with_a_warning(tmp_path, capsys):
    assert load_perceptual(str(tmp_path / "absent.safetensors")) is None
    assert load_perceptual("") is None
    err = capsys.readouterr().err
    assert err.count("warning: perceptual loss off") == 2 and "absent.safetensors" in err
