"""``omg-avatar info``: parameter counts per module and Gaussians per LOD."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.config import load_config
from core.flame import FlameLayer, load_flame_model
from core.geometry.mesh import unique_edges
from core.model import OmgAvatarNet
from core.model.backbone import DinoBackbone
from synthetic_flame import make_synthetic_flame, write_flame_npz


@pytest.fixture(scope="module")
def flame_file(tmp_path_factory):
    return write_flame_npz(make_synthetic_flame(seed=0), tmp_path_factory.mktemp("flame") / "flame.npz")


def _info(tmp_path, capsys, *args: str) -> tuple[dict, str]:
    assert main(["info", "--config", "tiny", "--json", str(tmp_path / "info.json"), *args]) == 0
    return json.loads((tmp_path / "info.json").read_text()), capsys.readouterr().out


def test_counts_are_those_of_the_network_and_gaussians_grow_by_the_edges(tmp_path, capsys, flame_file):
    info, printed = _info(tmp_path, capsys, "--flame", str(flame_file))
    config = load_config("tiny")
    model = load_flame_model(flame_file)
    net = OmgAvatarNet(config, FlameLayer(model, config.flame.n_shape, config.flame.n_expression),
                       DinoBackbone(config.model, None, random_init=True))
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    assert info["total"] == {"trainable": trainable, "frozen": frozen}
    assert info["modules"]["backbone"] == {"trainable": 0, "frozen": frozen}
    assert info["flame_vertices"] == len(model.v_template)

    counts = info["head_gaussians_per_lod"]
    assert len(counts) == config.lod.levels + 1 and counts[0] == len(model.v_template)
    faces = model.faces
    for level in range(config.lod.levels):  # V_{k+1} = V_k + E_k, and each level has 4x the faces
        assert counts[level + 1] == counts[level] + len(unique_edges(faces)[0])
        faces = net.lod.faces[level + 1]
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
    difference = without["modules"]["global_branch"]["trainable"] - with_flame["modules"]["global_branch"]["trainable"]
    assert difference == (5023 - with_flame["flame_vertices"]) * per_vertex
    assert np.all([without["modules"][name] == with_flame["modules"][name]
                   for name in without["modules"] if name != "global_branch"])


def test_a_missing_flame_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["info", "--config", "tiny", "--flame", str(tmp_path / "nope.pkl")]) == 2
    assert capsys.readouterr().err.strip() == f"omg-avatar: error: FLAME model not found: {tmp_path / 'nope.pkl'}"
