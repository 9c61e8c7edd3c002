"""The frozen DINOv2 backbone: shapes, freezing, and weights from Meta's official checkpoint
or a timm-format file (written here from random models; nothing is downloaded)."""

from __future__ import annotations

import dataclasses

import pytest
import safetensors.torch
import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from core.config import load_config
from core.errors import ConfigError, ModelFileError
from core.model.backbone import (
    DINOV2_URL,
    DinoBackbone,
    last_blocks,
    load_backbone_weights,
)
from core.model.checkpoint import learned_state
from core.paths import DINOV2_FILE, resolve_model_file

TINY = load_config("tiny").model
# Weight files of ViT-S (22M parameters) keep the loading tests quick; its key names are ViT-B's.
SMALL = dataclasses.replace(TINY, backbone="vit_small_patch14_dinov2")


def random_backbone(config=TINY) -> DinoBackbone:
    """A random backbone whose blocks matter: timm starts the layer scales at 1e-5."""
    backbone = DinoBackbone(config, None, random_init=True)
    with torch.no_grad():
        for name, parameter in backbone.named_parameters():
            if name.endswith(".gamma"):
                parameter.uniform_(0.5, 1.5)
    return backbone


def official_state_dict(backbone: DinoBackbone) -> dict[str, torch.Tensor]:
    """The state dict as Meta publishes it: timm's keys plus DINOv2's ``mask_token`` [1, D]
    (timm's ``_convert_dinov2`` drops it; the block keys, ``ls1.gamma`` included, are the same)."""
    return {**backbone.vit.state_dict(), "mask_token": torch.randn(1, backbone.embed_dim)}


@pytest.fixture(scope="module")
def tiny_backbone() -> DinoBackbone:
    return random_backbone(TINY)


@pytest.fixture(scope="module")
def small_source() -> DinoBackbone:
    return random_backbone(SMALL)


@pytest.fixture(scope="module")
def official_file(small_source, tmp_path_factory):
    """``small_source`` saved as Meta publishes its checkpoints."""
    path = tmp_path_factory.mktemp("official") / "dinov2_vits14_pretrain.pth"
    torch.save(official_state_dict(small_source), path)
    return path


@pytest.fixture(scope="module")
def untouched_vit():
    """A ViT-S for loads that must fail before changing it."""
    return DinoBackbone(SMALL, None, random_init=True).vit


def image(config=TINY, batch: int = 2) -> torch.Tensor:
    size = config.backbone_image_size
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def assert_same_features(features, expected) -> None:
    assert all(torch.equal(a, b) for a, b in zip(features.layers, expected.layers, strict=True))
    assert torch.equal(features.identity, expected.identity)


def test_paper_backbone_gives_four_37x37_grids_and_1370_identity_tokens():
    config = load_config("paper").model
    backbone = DinoBackbone(config, None, random_init=True)
    features = backbone(image(config, batch=1))
    assert backbone.embed_dim == 768
    assert [tuple(layer.shape) for layer in features.layers] == [(1, 768, 37, 37)] * 4
    assert features.identity.shape == (1, 1370, 768)


def test_features_are_the_normed_tokens_of_the_last_four_blocks_of_the_normalised_image(tiny_backbone):
    assert last_blocks(12) == [8, 9, 10, 11]
    assert last_blocks(24) == [20, 21, 22, 23]
    rgb = image()
    features = tiny_backbone(rgb)

    vit = tiny_backbone.vit
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        tokens = vit._pos_embed(vit.patch_embed((rgb - mean.view(3, 1, 1)) / std.view(3, 1, 1)))
        grids = []
        for index, block in enumerate(vit.blocks):
            tokens = block(tokens)
            if index in (8, 9, 10, 11):
                grids.append(vit.norm(tokens)[:, 1:].reshape(2, 4, 4, -1).permute(0, 3, 1, 2))
    assert [tuple(layer.shape) for layer in features.layers] == [(2, 768, 4, 4)] * 4
    for layer, grid in zip(features.layers, grids):
        torch.testing.assert_close(layer, grid)
    torch.testing.assert_close(features.identity, vit.norm(tokens))
    assert features.identity.shape == (2, 17, 768)


def test_backbone_is_frozen_and_stays_in_eval_mode(tiny_backbone):
    parent = nn.Sequential(tiny_backbone, nn.Identity())
    parent.train()
    assert parent.training and not any(module.training for module in tiny_backbone.modules())
    assert not any(parameter.requires_grad for parameter in tiny_backbone.parameters())
    features = tiny_backbone(image().requires_grad_())
    assert not features.identity.requires_grad and not any(layer.requires_grad for layer in features.layers)
    assert not any(key.startswith("0.") for key in learned_state(parent))  # never in network checkpoints


def test_official_checkpoint_reproduces_the_source_model(small_source, official_file):
    loaded = DinoBackbone(SMALL, official_file)
    for key, value in small_source.vit.state_dict().items():
        assert torch.equal(loaded.vit.state_dict()[key], value), key
    assert_same_features(loaded(image()), small_source(image()))


def test_official_position_embedding_is_resampled_to_the_image_size(small_source, tmp_path):
    state = official_state_dict(small_source)
    state["pos_embed"] = torch.randn(1, 1370, 384)  # Meta's file: 37 x 37 patches + class token at 518
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    loaded = DinoBackbone(SMALL, path)
    expected = resample_abs_pos_embed(state["pos_embed"], new_size=[4, 4], num_prefix_tokens=1)
    assert loaded.vit.pos_embed.shape == (1, 17, 384)
    assert torch.equal(loaded.vit.pos_embed, expected)


def test_timm_format_safetensors_round_trip(small_source, tmp_path):
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(small_source.vit.state_dict(), path)
    assert_same_features(DinoBackbone(SMALL, path)(image()), small_source(image()))


def test_missing_weights_name_the_file_the_folder_and_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    expected = tmp_path / "dinov2" / "dinov2_vitb14_pretrain.pth"
    assert resolve_model_file(DINOV2_FILE) == expected
    with pytest.raises(ModelFileError) as caught:
        DinoBackbone(TINY, None)
    message = str(caught.value)
    assert f"put it at {expected}" in message and DINOV2_URL in message and "\n" not in message


def test_weights_of_another_size_give_a_readable_report(official_file):
    with pytest.raises(ModelFileError) as caught:
        DinoBackbone(TINY, official_file)  # ViT-B
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("dinov2_vits14_pretrain.pth: does not fit vit_base_patch14_dinov2")
    assert "    cls_token: file [1, 1, 384], model [1, 1, 768]" in lines
    assert lines[-1].startswith("    ... and ")


def test_a_state_dict_of_another_model_lists_missing_and_unexpected_keys(untouched_vit, tmp_path):
    path = tmp_path / "resnet.safetensors"
    safetensors.torch.save_file({"conv1.weight": torch.zeros(8, 3, 7, 7)}, path)
    with pytest.raises(ModelFileError) as caught:
        load_backbone_weights(untouched_vit, path)
    message = str(caught.value)
    assert "1 unexpected key(s):\n    conv1.weight" in message
    assert "missing key(s):\n    cls_token" in message


def test_unreadable_weights_give_one_line_errors(untouched_vit, tmp_path):
    corrupt = tmp_path / "dinov2_vitb14_pretrain.pth"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    for path, expected in ((corrupt, "not a readable torch file"), (not_a_dict, "holds a Tensor")):
        with pytest.raises(ModelFileError) as caught:
            load_backbone_weights(untouched_vit, path)
        assert str(caught.value).startswith(f"{path.name}: {expected}") and "\n" not in str(caught.value)


def test_an_unknown_backbone_name_is_a_config_error():
    with pytest.raises(ConfigError, match="vit_nonexistent"):
        DinoBackbone(dataclasses.replace(TINY, backbone="vit_nonexistent"), None, random_init=True)
