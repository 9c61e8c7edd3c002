"""The OMG-Avatar network at the tiny config with a synthetic FLAME: training forward and
backward, the frozen backbone, reenactment without the backbone, Gaussians per level of
detail and their rendering, shoulders, parameter counts and what checkpoints hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import Config, load_config
from core.flame import FlameLayer, load_flame_model
from core.geometry.camera import Camera
from core.geometry.mesh import unique_edges
from core.model import FlameCoefficients, OmgAvatarNet, SourceEncoding, parameter_counts
from core.model.backbone import DinoBackbone
from core.model.checkpoint import CheckpointError, learned_state, load_strict, read_checkpoint, save_checkpoint
from core.render import render
from synthetic_flame import make_synthetic_flame, write_flame_npz

TINY = load_config("tiny")


# --------------------------------------------------------------------------- helpers (also used by the paper test)
def synthetic_flame_layer(folder: Path, config: Config) -> FlameLayer:
    """The synthetic FLAME (2,646 vertices, closed meshes) as the config's layer."""
    model = load_flame_model(write_flame_npz(make_synthetic_flame(seed=0), folder / "flame.npz"))
    return FlameLayer(model, config.flame.n_shape, config.flame.n_expression)


def build_net(config: Config, flame: FlameLayer) -> OmgAvatarNet:
    torch.manual_seed(0)
    return OmgAvatarNet(config, flame, DinoBackbone(config.model, None, random_init=True))


def portrait_mask(size: int, batch: int = 1) -> torch.Tensor:
    """[B, 1, S, S]: a head-sized ellipse at the centre and the whole width below 56% of the height."""
    row, column = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    head = ((column - size / 2) / (0.3 * size)) ** 2 + ((row - size / 2) / (0.4 * size)) ** 2 <= 1
    mask = (head | (row >= 0.5625 * size)).float()
    return mask.expand(batch, 1, size, size).clone()


def source_coefficients(config: Config, batch: int = 1, seed: int = 0) -> FlameCoefficients:
    generator = torch.Generator().manual_seed(seed)
    return FlameCoefficients(
        shape=0.5 * torch.randn(batch, config.flame.n_shape, generator=generator),
        expression=0.5 * torch.randn(batch, config.flame.n_expression, generator=generator),
        jaw=torch.tensor([[0.05, 0.0, 0.0]]).repeat(batch, 1),
    )


def source_image(config: Config, batch: int = 1) -> torch.Tensor:
    size = config.image_size
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def splat_features(gaussians, camera: Camera) -> torch.Tensor:
    """[1, C, H, W] feature image by the differentiable reference backend."""
    return render(gaussians, camera, backend="reference").features.permute(2, 0, 1)[None]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def flame(tmp_path_factory) -> FlameLayer:
    return synthetic_flame_layer(tmp_path_factory.mktemp("flame"), TINY)


@pytest.fixture(scope="module")
def net(flame) -> OmgAvatarNet:
    return build_net(TINY, flame).eval()


@pytest.fixture(scope="module")
def encoding(net) -> SourceEncoding:
    with torch.no_grad():
        return net.encode(source_image(TINY), source_coefficients(TINY), portrait_mask(TINY.image_size))


# --------------------------------------------------------------------------- training
def test_forward_and_backward_reach_every_trainable_parameter_and_leave_the_backbone_frozen(net):
    net.train()
    net.zero_grad(set_to_none=True)
    try:
        driving = FlameCoefficients(expression=torch.randn(1, TINY.flame.n_expression), jaw=torch.tensor([[0.2, 0, 0]]))
        image = source_image(TINY)
        mask = portrait_mask(TINY.image_size)
        gaussians, offsets = net(image, source_coefficients(TINY), mask, driving, TINY.lod.levels)
        features = splat_features(gaussians[0], net.source_camera())
        refined = net.refine(features)
        loss = ((refined - image) ** 2).mean() + ((features[:, :3] - image) ** 2).mean() + (offsets**2).sum()
        loss.backward()
    finally:
        net.eval()
    missing = [
        name
        for name, parameter in net.named_parameters()
        if parameter.requires_grad and (parameter.grad is None or not parameter.grad.abs().sum() > 0)
    ]
    assert missing == []
    assert sum(p.requires_grad for p in net.parameters()) > 50  # the check above covered the network
    assert all(not p.requires_grad and p.grad is None for p in net.backbone.parameters())
    assert offsets.shape == (1, net.poser.num_vertices, 3)


def test_backbone_stays_in_eval_mode_when_the_network_trains(net):
    net.train()
    try:
        assert net.heads.training and net.refiner.training
        assert not net.backbone.training
        assert not any(module.training for module in net.backbone.modules())
    finally:
        net.eval()


# --------------------------------------------------------------------------- reenactment
def test_encode_runs_the_backbone_once_and_frames_never(net):
    calls = []
    handle = net.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            encoding = net.encode(source_image(TINY), source_coefficients(TINY), portrait_mask(TINY.image_size))
            assert len(calls) == 1
            for frame in range(3):
                expression = torch.randn(1, TINY.flame.n_expression, generator=torch.Generator().manual_seed(frame))
                for lod in range(net.num_lods):
                    net.gaussians(encoding, FlameCoefficients(expression=expression), lod)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_a_new_expression_moves_head_positions_but_keeps_colours_opacities_and_shapes(net, encoding):
    frames = [
        FlameCoefficients(expression=torch.zeros(1, TINY.flame.n_expression)),
        FlameCoefficients(expression=2.0 * torch.ones(1, TINY.flame.n_expression), jaw=torch.tensor([[0.3, 0.0, 0.0]])),
    ]
    with torch.no_grad():
        for lod in range(net.num_lods):
            first, second = (net.gaussians(encoding, frame, lod)[0] for frame in frames)
            head = net.lod.num_vertices[lod]
            moved = (first.means[:head] - second.means[:head]).norm(dim=1)
            assert moved.max() > 0.05  # world units (FLAME x5): the jaw opens
            assert (moved > 1e-4).sum() > 0.05 * head
            assert torch.equal(first.means[head:], second.means[head:])  # shoulders are static
            for name in ("features", "opacities", "scales", "quats"):
                assert torch.equal(getattr(first, name), getattr(second, name)), name


def test_the_source_coefficients_reproduce_the_source_pose(net):
    """Driving with the source's own coefficients puts the head where encode saw it."""
    source = source_coefficients(TINY)
    with torch.no_grad():
        encoding = net.encode(source_image(TINY), source, portrait_mask(TINY.image_size), max_lod=0)
        gaussians = net.gaussians(encoding, source, 0)[0]
        expected = net.poser(source.shape, encoding.offsets, source)[0]
        neutral = net.poser(source.shape, encoding.offsets, FlameCoefficients())[0]
    head = net.lod.num_vertices[0]
    torch.testing.assert_close(gaussians.means[:head], expected)
    assert (gaussians.means[:head] - neutral).norm(dim=1).max() > 0.01


# --------------------------------------------------------------------------- levels of detail
def test_head_gaussians_per_level_are_vertices_plus_edges_of_the_previous_level(net, flame, encoding):
    expected = [flame.v_template.shape[0]]
    for level in range(TINY.lod.levels):
        edges, _ = unique_edges(net.lod.faces[level])
        expected.append(expected[-1] + len(edges))
    shoulders = len(encoding.shoulders[0])
    assert shoulders > 0
    with torch.no_grad():
        counts = [len(net.gaussians(encoding, FlameCoefficients(), lod)[0]) - shoulders for lod in range(net.num_lods)]
    # closed meshes: E = 3F / 2 with F = 5,280 faces at level 0, four times more per level
    assert counts == expected == [2646, 2646 + 7920, 2646 + 7920 + 31680]
    assert [attributes.features.shape[1] for attributes in encoding.levels] == counts


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_every_level_renders_with_non_empty_alpha(net, encoding, backend):
    camera = net.source_camera()
    centre = camera.height // 2
    for lod in range(net.num_lods):
        with torch.no_grad():
            gaussians = net.gaussians(encoding, FlameCoefficients(), lod)[0]
        out = render(gaussians, camera, backend=backend)
        assert out.features.shape == (camera.height, camera.width, TINY.model.splat_channels)
        assert out.alpha[centre, centre] > 0.9  # the face, seen from the front
        assert out.alpha[0, 0] < 0.01  # a corner outside the head and the shoulders
        assert out.alpha[-1, 2] > 0.5  # a shoulder cell
        assert torch.isfinite(out.features).all()


def test_encode_up_to_a_level_gives_that_many_levels_and_refuses_finer_frames(net):
    with torch.no_grad():
        encoding = net.encode(source_image(TINY), source_coefficients(TINY), portrait_mask(TINY.image_size), max_lod=1)
    assert encoding.max_lod == 1 and len(encoding.levels) == 2
    with pytest.raises(ValueError, match="level of detail 2"):
        net.gaussians(encoding, FlameCoefficients(), 2)
    with pytest.raises(ValueError, match="level of detail 3"):
        net.encode(source_image(TINY), source_coefficients(TINY), portrait_mask(TINY.image_size), max_lod=3)


# --------------------------------------------------------------------------- shoulders and batches
def test_shoulders_sit_on_their_cells_rays_inside_the_mask_below_the_head(net, encoding):
    camera = encoding.cameras[0]
    shoulders = encoding.shoulders[0]
    uv, depth = camera.project(shoulders.means.double())
    cell = TINY.image_size / (TINY.model.feature_plane_size // 2)
    np.testing.assert_allclose(((uv / cell) % 1.0).numpy(), 0.5, atol=1e-3)  # on cell centres
    mask = portrait_mask(TINY.image_size)[0, 0]
    columns, rows = np.floor(uv.numpy()).astype(int).T
    assert (mask[rows, columns] == 1).all()
    assert (uv[:, 1] > camera.height / 2).all()  # the synthetic head is centred
    assert (depth > 0).all()
    with torch.no_grad():
        empty = net.encode(source_image(TINY), source_coefficients(TINY), torch.zeros(1, 1, 64, 64), max_lod=0)
    assert len(empty.shoulders[0]) == 0


def test_a_batch_of_two_views_encodes_each_with_its_own_camera(net):
    size = TINY.image_size
    frontal = net.source_camera()
    turned = Camera.orbit((0, 0, 0), 25.0, 10.0, TINY.camera.distance, size, size, TINY.camera.focal_normalized)
    source = source_coefficients(TINY, batch=2)
    with torch.no_grad():
        encoding = net.encode(source_image(TINY, 2), source, portrait_mask(size, 2), [frontal, turned], max_lod=1)
        gaussians = net.gaussians(encoding, FlameCoefficients(expression=torch.zeros(2, TINY.flame.n_expression)), 1)
    assert len(gaussians) == 2 and encoding.cameras == (frontal, turned)
    # different views of the same photo sample different local features
    assert not torch.allclose(encoding.levels[1].features[0], encoding.levels[1].features[1])
    with pytest.raises(ValueError, match="driving batch 3"):
        net.gaussians(encoding, FlameCoefficients(expression=torch.zeros(3, TINY.flame.n_expression)), 0)
    with pytest.raises(ValueError, match="1 cameras for a batch of 2"):
        net.encode(source_image(TINY, 2), source, portrait_mask(size, 2), [frontal])


# --------------------------------------------------------------------------- parameters and checkpoints
def test_parameter_counts_split_trainable_and_frozen_per_module(net):
    counts = parameter_counts(net)
    assert list(counts) == [
        "backbone", "local_features", "global_branch", "offset_mlp",
        "coarse_to_fine", "heads", "shoulders", "refiner",
    ]  # fmt: skip
    assert counts["backbone"]["trainable"] == 0 and counts["backbone"]["frozen"] > 0
    assert all(count["frozen"] == 0 and count["trainable"] > 0 for name, count in counts.items() if name != "backbone")
    total = sum(count["trainable"] + count["frozen"] for count in counts.values())
    assert total == sum(p.numel() for p in net.parameters())
    queries = net.poser.num_vertices * TINY.model.feature_dim
    assert counts["global_branch"]["trainable"] > queries


def test_checkpoints_hold_neither_flame_nor_dinov2(net):
    keys = learned_state(net).keys()
    assert not [key for key in keys if key.startswith(("poser.", "backbone."))]
    assert "global_branch.queries" in keys and not [key for key in keys if "spacing" in key]


def test_a_checkpoint_round_trip_gives_identical_gaussians_and_refined_images(flame, tmp_path):
    net = build_net(TINY, flame).eval()
    with torch.no_grad():  # move every weight away from its initial value
        for parameter in net.parameters():
            if parameter.requires_grad:
                parameter.add_(0.01 * torch.randn_like(parameter))
    state, config = read_checkpoint(save_checkpoint(net, TINY, tmp_path / "net.safetensors"))
    torch.manual_seed(1)  # a differently initialised network of the same config
    loaded = OmgAvatarNet(config, flame, net.backbone).eval()
    load_strict(loaded, state, "net.safetensors")
    image, coefficients, mask = source_image(TINY), source_coefficients(TINY), portrait_mask(TINY.image_size)
    with torch.no_grad():
        expected = net.gaussians(net.encode(image, coefficients, mask), coefficients, 1)[0]
        actual = loaded.gaussians(loaded.encode(image, coefficients, mask), coefficients, 1)[0]
        for field in ("means", "quats", "scales", "opacities", "features"):
            assert torch.equal(getattr(actual, field), getattr(expected, field)), field
        features = torch.rand(1, TINY.model.splat_channels, 64, 64, generator=torch.Generator().manual_seed(2))
        assert torch.equal(loaded.refine(features), net.refine(features))


def test_a_checkpoint_of_another_size_is_refused_with_a_report(flame, tmp_path):
    wider = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, feature_dim=2 * TINY.model.feature_dim))
    path = save_checkpoint(build_net(wider, flame), wider, tmp_path / "wide.safetensors")
    state, _ = read_checkpoint(path)
    with pytest.raises(CheckpointError) as refused:
        load_strict(build_net(TINY, flame), state, path.name)
    report = str(refused.value)
    assert report.startswith("wide.safetensors: does not fit this network")
    assert "mis-shaped key(s)" in report  # every layer whose width follows feature_dim
    assert "local_features.reassemble.1.1.weight: file [128, 128, 2, 2], model [64, 64, 2, 2]" in report
