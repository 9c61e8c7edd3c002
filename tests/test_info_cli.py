"""``omg-avatar info``: the released network's parameter counts per module and Gaussians per LOD."""

from __future__ import annotations

import json

import numpy as np
import pytest
from official_parity import parity_folder

from core.cli import main
from core.config import load_config
from core.flame import load_flame_model
from core.geometry.mesh import unique_edges
from core.model.release_checkpoint import DINO_PREFIX
from core.model.release_loading import build_release_network
from core.model.release_network import release_config


@pytest.fixture(scope="module")
def flame_file():
    """The parity fixture's synthetic FLAME, in the release's bundle."""
    return parity_folder() / "synthetic_flame" / "FLAME_with_eye.pt"


def _info(tmp_path, capsys, *args: str) -> tuple[dict, str]:
    assert main(["info", "--config", "tiny", "--json", str(tmp_path / "info.json"), *args]) == 0
    return json.loads((tmp_path / "info.json").read_text()), capsys.readouterr().out


def test_counts_are_those_of_the_network_and_gaussians_grow_by_the_edges(tmp_path, capsys, flame_file):
    info, printed = _info(tmp_path, capsys, "--flame", str(flame_file))
    config = load_config("tiny")
    network = build_release_network(release_config(config), flame_file)
    frozen = sum(p.numel() for key, p in network.named_parameters() if key.startswith(DINO_PREFIX))
    trainable = sum(p.numel() for p in network.parameters()) - frozen
    assert info["total"] == {"trainable": trainable, "frozen": frozen}
    assert info["modules"]["base_dino_model"]["frozen"] == frozen
    assert set(info["modules"]) == {name for name, _ in network.named_children()} - {"flame_model", "subdivider"} | {"head_base"}
    model = load_flame_model(flame_file)
    assert info["flame_vertices"] == len(model.v_template)

    counts = info["head_gaussians_per_lod"]
    assert len(counts) == config.lod.levels + 1 and counts[0] == len(model.v_template)
    assert counts[1] == counts[0] + len(unique_edges(model.faces)[0])  # a new vertex per edge
    assert counts == list(network.geometry.subdivision.num_vertices)
    assert f"Sub#0 {counts[0]:,}" in printed and "total" in printed


def test_without_flame_the_queries_are_counted_for_5023_vertices(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path / "no-models"))
    info, printed = _info(tmp_path, capsys)
    assert info["flame_file"] is None and info["head_gaussians_per_lod"] is None
    assert info["flame_vertices"] == 5023
    assert info["dinov2_file_present"] is False
    assert info["dinov2_file"].endswith("dinov2/dinov2_vitb14_pretrain.pth")
    assert "no FLAME file" in printed and "(missing)" in printed


def test_the_queries_grow_with_flame_vertices(tmp_path, capsys, flame_file, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path / "no-models"))
    without, _ = _info(tmp_path, capsys)
    with_flame, _ = _info(tmp_path, capsys, "--flame", str(flame_file))
    per_vertex = load_config("tiny").model.feature_dim  # one learnable query of feature_dim per vertex
    difference = without["modules"]["head_base"]["trainable"] - with_flame["modules"]["head_base"]["trainable"]
    assert difference == (5023 - with_flame["flame_vertices"]) * per_vertex
    assert np.all([without["modules"][name] == with_flame["modules"][name]
                   for name in without["modules"] if name != "head_base"])


def test_a_missing_flame_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["info", "--config", "tiny", "--flame", str(tmp_path / "nope.pkl")]) == 2
    assert capsys.readouterr().err.strip() == f"omg-avatar: error: FLAME model not found: {tmp_path / 'nope.pkl'}"
