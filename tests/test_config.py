"""YAML configs read strictly into typed dataclasses."""

from __future__ import annotations

import pytest
import yaml

from core.config import (
    SMOOTHING_GROUPS,
    Config,
    OneEuroConfig,
    available_configs,
    config_to_dict,
    from_dict,
    load_config,
)
from core.errors import ConfigError
from core.paths import CONFIG_DIR


def test_paper_config_carries_the_papers_numbers():
    config = load_config("paper")
    assert isinstance(config, Config)
    assert config.image_size == 512
    assert config.camera.focal_normalized == 12.0
    assert config.lod.head_gaussians == [5023, 20018, 79936]
    assert config.lod.levels == 2 and config.lod.scheme == "loop"
    assert config.model.feature_plane_size == 296
    assert (config.model.global_layers, config.model.global_heads) == (2, 8)
    assert config.model.splat_channels == 32
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.training.batch_size == 8
    loss = config.training.loss
    assert (loss.l2, loss.ssim, loss.perceptual, loss.offset) == (10.0, 1.0, 0.1, 0.1)
    assert (config.flame.n_shape, config.flame.n_expression) == (300, 100)


def test_tiny_config_is_small_and_has_the_same_shape():
    tiny, paper = load_config("tiny"), load_config("paper")
    assert tiny.model.feature_plane_size < paper.model.feature_plane_size
    assert tiny.image_size < paper.image_size
    assert set(available_configs()) >= {"paper", "tiny"}


def _write(tmp_path, data) -> str:
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _paper_dict():
    return yaml.safe_load((CONFIG_DIR / "paper.yaml").read_text())


def test_a_file_path_loads_and_ints_widen_to_floats(tmp_path):
    data = _paper_dict()
    data["camera"]["focal_normalized"] = 10
    config = load_config(_write(tmp_path, data))
    assert config.camera.focal_normalized == 10.0 and isinstance(config.camera.focal_normalized, float)


def test_unknown_keys_are_errors(tmp_path):
    data = _paper_dict()
    data["tracking"]["crop"]["zoom"] = 2
    with pytest.raises(ConfigError, match=r"unknown key\(s\) zoom in CropConfig"):
        load_config(_write(tmp_path, data))


def test_missing_keys_and_wrong_types_are_errors(tmp_path):
    data = _paper_dict()
    del data["camera"]["distance"]
    with pytest.raises(ConfigError, match="missing key.*distance"):
        load_config(_write(tmp_path, data))
    data = _paper_dict()
    data["image_size"] = "big"
    with pytest.raises(ConfigError, match="image_size: expected int"):
        load_config(_write(tmp_path, data))
    data = _paper_dict()
    data["tracking"]["refine_landmarks"] = 1
    with pytest.raises(ConfigError, match="expected bool"):
        load_config(_write(tmp_path, data))


def test_unknown_names_bad_yaml_and_missing_files_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_smoothing_groups_default_to_the_three_scalars_so_old_files_still_load(tmp_path):
    data = _paper_dict()
    data["tracking"]["smoothing"] = {"min_cutoff": 1.5, "beta": 0.05, "d_cutoff": 1.0}  # before the groups
    smoothing = load_config(_write(tmp_path, data)).tracking.smoothing
    for group in SMOOTHING_GROUPS:
        assert smoothing.group(group) == OneEuroConfig(1.5, 0.05, 1.0)

    data["tracking"]["smoothing"]["eyelids"] = {"beta": 0.3}  # a partial entry: the rest from the scalars
    data["tracking"]["smoothing"]["pose"] = None
    smoothing = load_config(_write(tmp_path, data)).tracking.smoothing
    assert smoothing.group("eyelids") == OneEuroConfig(1.5, 0.3, 1.0)
    assert smoothing.group("pose") == OneEuroConfig(1.5, 0.05, 1.0)


def test_paper_smoothing_has_per_group_entries_and_round_trips():
    config = load_config("paper")
    smoothing = config.tracking.smoothing
    assert smoothing.group("eyelids") != smoothing.group("pose")
    assert from_dict(Config, config_to_dict(config), "round trip") == config


def test_smoothing_unknown_groups_keys_and_types_are_errors(tmp_path):
    data = _paper_dict()
    data["tracking"]["smoothing"]["cheeks"] = {"beta": 1.0}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) cheeks in SmoothingConfig"):
        load_config(_write(tmp_path, data))
    data = _paper_dict()
    data["tracking"]["smoothing"]["lips"] = {"gain": 1.0}
    with pytest.raises(ConfigError, match=r"lips: unknown key\(s\) gain"):
        load_config(_write(tmp_path, data))
    data = _paper_dict()
    data["tracking"]["smoothing"]["lips"] = {"beta": "fast"}
    with pytest.raises(ConfigError, match="beta: expected float"):
        load_config(_write(tmp_path, data))
    data = _paper_dict()
    del data["tracking"]["smoothing"]["d_cutoff"]
    with pytest.raises(ConfigError, match="missing key.*d_cutoff"):
        load_config(_write(tmp_path, data))
