"""Network checkpoints: safetensors + config, frozen weights left out, strict loading with a
readable report, one-line errors for files that are not checkpoints."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from torch import nn

from core.config import load_config
from core.errors import ModelFileError
from core.model.checkpoint import (
    CheckpointError,
    frozen_keys,
    learned_state,
    load_strict,
    read_checkpoint,
    save_checkpoint,
)


class FrozenPart(nn.Module):
    """Stands for the DINOv2 backbone: weights from elsewhere, never stored."""

    frozen = True

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.register_buffer("table", torch.randn(3))


class Toy(nn.Module):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.frozen_part = FrozenPart()
        self.body = nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.Linear(hidden, 2))
        self.fixed_scale = nn.Parameter(torch.full((2,), 3.0), requires_grad=False)
        self.register_buffer("steps", torch.tensor(7))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.frozen_part.linear(x)) * self.fixed_scale


def trained_toy(hidden: int = 8) -> Toy:
    """A Toy whose weights and BatchNorm statistics differ from a fresh one's."""
    toy = Toy(hidden)
    with torch.no_grad():
        for parameter in toy.body.parameters():
            parameter.normal_()
        toy.train()
        toy(torch.randn(16, 4))
        toy.steps += 5
    return toy.eval()


@pytest.fixture(scope="module")
def config():
    return load_config("tiny")


def test_frozen_keys_are_the_frozen_module_and_parameters_without_gradients():
    toy = Toy()
    assert frozen_keys(toy) == {"frozen_part.linear.weight", "frozen_part.linear.bias", "frozen_part.table", "fixed_scale"}
    assert set(learned_state(toy)) == {
        "steps", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
        "body.1.weight", "body.1.bias", "body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked",
    }


def test_round_trip_gives_identical_state_config_and_outputs(tmp_path, config):
    source = trained_toy()
    written = save_checkpoint(source, config, tmp_path / "net")
    assert written == tmp_path / "net.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.safetensors"]  # no temp file left behind
    assert set(safetensors.torch.load_file(written)) == set(learned_state(source))

    state, read_config = read_checkpoint(written)
    assert read_config == config
    target = Toy().eval()
    target.frozen_part.load_state_dict(source.frozen_part.state_dict())  # comes from its own file
    target.fixed_scale.data.copy_(source.fixed_scale)
    load_strict(target, state, written.name)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    x = torch.randn(5, 4)
    assert torch.equal(target(x), source(x))


def test_loading_leaves_frozen_weights_alone(tmp_path, config):
    state, _ = read_checkpoint(save_checkpoint(trained_toy(), config, tmp_path / "net.safetensors"))
    target = Toy()
    frozen_before = {key: value.clone() for key, value in target.frozen_part.state_dict().items()}
    load_strict(target, state, "net.safetensors")
    assert all(torch.equal(target.frozen_part.state_dict()[key], value) for key, value in frozen_before.items())


def test_saving_over_a_checkpoint_replaces_it_and_leaves_no_temp_file(tmp_path, config):
    path = save_checkpoint(Toy(), config, tmp_path / "net.safetensors")
    second = trained_toy()
    save_checkpoint(second, config, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.safetensors"]
    state, _ = read_checkpoint(path)
    assert torch.equal(state["body.0.weight"], second.body[0].weight)


def test_a_checkpoint_of_another_network_gives_a_readable_report(tmp_path, config):
    path = save_checkpoint(trained_toy(hidden=16), config, tmp_path / "wide.safetensors")
    state, _ = read_checkpoint(path)
    del state["body.2.bias"]
    state["extra.weight"] = torch.zeros(2)
    target = Toy(hidden=8)
    before = {key: value.clone() for key, value in target.state_dict().items()}
    with pytest.raises(CheckpointError) as caught:
        load_strict(target, state, "wide.safetensors")
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("wide.safetensors: does not fit this network")
    assert "  1 missing key(s):" in lines and "    body.2.bias" in lines
    assert "  1 unexpected key(s):" in lines and "    extra.weight" in lines
    assert "    body.0.weight: file [16, 4], model [8, 4]" in lines
    assert "    body.1.running_var: file [16], model [8]" in lines
    assert all(torch.equal(target.state_dict()[key], value) for key, value in before.items())  # nothing loaded


def test_the_report_lists_a_few_names_and_counts_the_rest():
    state = dict(learned_state(Toy()), **{f"stray.{i}": torch.zeros(1) for i in range(12)})
    with pytest.raises(CheckpointError) as caught:
        load_strict(Toy(), state, "big.safetensors")
    lines = str(caught.value).splitlines()
    assert "  12 unexpected key(s):" in lines
    assert sum(line.startswith("    stray.") for line in lines) == 8
    assert lines[-1] == "    ... and 4 more"


def test_a_missing_checkpoint_names_its_path(tmp_path):
    with pytest.raises(ModelFileError, match=str(tmp_path / "absent.safetensors")):
        read_checkpoint(tmp_path / "absent.safetensors")


def one_line_error(path) -> str:
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(path.name)
    return message


def test_files_that_are_not_checkpoints_give_one_line_errors(tmp_path, config):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert "not a readable safetensors file" in one_line_error(garbage)

    pickle_file = tmp_path / "weights.pth"
    torch.save({"weight": torch.zeros(3)}, pickle_file)
    assert "not a readable safetensors file" in one_line_error(pickle_file)

    truncated = tmp_path / "truncated.safetensors"
    data = save_checkpoint(trained_toy(), config, tmp_path / "whole.safetensors").read_bytes()
    truncated.write_bytes(data[: len(data) - 40])
    assert "not a readable safetensors file" in one_line_error(truncated)

    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(3)}, plain)
    assert "not an OMG-Avatar network checkpoint" in one_line_error(plain)


def test_a_checkpoint_with_a_bad_header_gives_one_line_errors(tmp_path):
    tensors = {"weight": torch.zeros(3)}
    cases = {
        "future.safetensors": ({"format": "omg-avatar-network", "version": "2", "config": "{}"}, "version '2'"),
        "no_config.safetensors": ({"format": "omg-avatar-network", "version": "1"}, "expected a mapping"),
        "bad_json.safetensors": ({"format": "omg-avatar-network", "version": "1", "config": "{oops"}, "not valid JSON"),
        "old_config.safetensors": (
            {"format": "omg-avatar-network", "version": "1", "config": json.dumps({"name": "x"})},
            "missing key(s)",
        ),
    }
    for name, (metadata, expected) in cases.items():
        safetensors.torch.save_file(tensors, tmp_path / name, metadata=metadata)
        assert expected in one_line_error(tmp_path / name), name


def test_a_checkpoint_from_another_program_version_reads_its_network_sections(tmp_path, config):
    """Training and tracking fields added or dropped between versions do not stop a
    checkpoint from loading; the sections that size the network are read as stored."""
    path = save_checkpoint(trained_toy(), config, tmp_path / "old.safetensors")
    stored = json.loads(safetensors.safe_open(path, framework="pt").metadata()["config"])
    del stored["training"]["learning_rate"]  # a field this version has and the writer had not
    stored["tracking"]["future_option"] = 1  # a field the writer had and this version has not
    stored["model"]["feature_dim"] = 7
    safetensors.torch.save_file({"weight": torch.zeros(3)}, path, metadata={
        "format": "omg-avatar-network", "version": "1", "config": json.dumps(stored)})
    _, read = read_checkpoint(path)
    assert read.model.feature_dim == 7
    assert read.training.learning_rate == config.training.learning_rate  # from the shipped tiny config
    assert read.tracking == config.tracking
