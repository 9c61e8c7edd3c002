"""The release's checkpoint ``omg_ckpt.pt``: read weights-only and bounded, its meta_cfg turned
into the network's sizes, its keys classified against the release network (the parity fixture's
manifests), and ``omg-avatar info --checkpoint``. A checkpoint in the release's layout is built
once per module from the synthetic manifest (recipe values, FLAME buffers as zeros of the
manifest's shapes): a full ViT-B, about 0.56 GB in the temporary folder."""

from __future__ import annotations

import collections
import json
import pickle
import shutil
import sys
import types

import pytest
import torch
import numpy as np
from official_parity import (
    PERCEPTUAL_KEY,
    ParityFixture,
    assert_close_to_scale,
    parity_folder,
    recipe_tensor,
    write_release_checkpoint,
)

from core.cli import main
from core.errors import CheckpointError, ModelFileError
from core.model import release_checkpoint
from core.flame.files import load_flame_model
from core.model.release_loading import load_release_network
from core.torch_files import read_weights_only
from core.model.release_network import ReleaseConfig
from core.model.release_checkpoint import (
    DINO_PREFIX,
    FlameSizes,
    classify_keys,
    expected_release_shapes,
    read_release_checkpoint,
    release_sizes,
    require_dinov2_file,
)


def _manifest(folder, which="synthetic") -> list[dict]:
    return json.loads((folder / f"state_dict_manifest_{which}.json").read_text())["keys"]


def _shapes(rows) -> dict[str, tuple[int, ...]]:
    return {row["name"]: tuple(row["shape"]) for row in rows if not row["name"].startswith("percep_loss.")}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(folder, meta_cfg, expected key -> shape, path of the fake checkpoint)."""
    folder = parity_folder()
    meta_cfg = json.loads((folder / "fixture_info.json").read_text())["meta_cfg"]
    path = write_release_checkpoint(folder, tmp_path_factory.mktemp("release") / "omg_ckpt.pt")
    return folder, meta_cfg, _shapes(_manifest(folder)), path


@pytest.fixture(scope="module")
def loaded(release):
    return read_release_checkpoint(release[3])


def _one_line(error: pytest.ExceptionInfo, name: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith(name), message
    return message


class _MarkerMaker:
    """Unpickling this would create a file (what a hostile pickle does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --------------------------------------------------------------------------- the expected keys
@pytest.mark.parametrize("which, flame", [("synthetic", FlameSizes(645, 1252)), ("real", FlameSizes())])
def test_expected_shapes_are_the_release_manifests(which, flame):
    expected = expected_release_shapes(ReleaseConfig(256, 2, 2), flame)
    assert expected == _shapes(_manifest(parity_folder(), which))


def test_more_transformer_layers_and_fewer_levels_change_the_keys():
    base = expected_release_shapes(ReleaseConfig(256, 2, 2))
    other = expected_release_shapes(ReleaseConfig(256, 3, 1))
    assert len(other) - len(base) == 18 - 20  # a decoder layer has 18 keys, a head generator 20


# --------------------------------------------------------------------------- the release layout
def test_the_release_layout_loads_with_nothing_missing_unexpected_or_mismatched(release, loaded):
    _, meta_cfg, expected, path = release
    assert loaded.file == path and loaded.meta_cfg == meta_cfg
    assert loaded.sizes == ReleaseConfig(dim=256, transformer_layers=2, subdivision=2) and loaded.sizes.plane_size == 296
    report = classify_keys(loaded.model, expected)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert report.ignored == [PERCEPTUAL_KEY] and report.has_dinov2 and report.problem(path.name) is None
    assert require_dinov2_file(report) is None
    assert torch.equal(loaded.model["head_base"], recipe_tensor("head_base", (645, 256)))


def test_without_the_dino_keys_the_dinov2_file_is_needed(release, loaded, tmp_path, monkeypatch):
    expected = release[2]
    without = {key: value for key, value in loaded.model.items() if not key.startswith(DINO_PREFIX)}
    report = classify_keys(without, expected)
    assert not report.has_dinov2 and (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path / "models"))
    place = tmp_path / "models" / "dinov2" / "dinov2_vitb14_pretrain.pth"
    with pytest.raises(ModelFileError) as error:
        require_dinov2_file(report)
    message = str(error.value)
    assert "\n" not in message and "dinov2_vitb14_pretrain.pth" in message and f"put it at {place}" in message
    place.parent.mkdir(parents=True)
    place.write_bytes(b"")
    assert require_dinov2_file(report) == place
    # all or none: some DINO keys make the others missing
    partial = {**without, f"{DINO_PREFIX}cls_token": loaded.model[f"{DINO_PREFIX}cls_token"]}
    report = classify_keys(partial, expected)
    assert report.has_dinov2 and len(report.missing) == sum(key.startswith(DINO_PREFIX) for key in expected) - 1


def _other_width(model: dict, width: int = 128) -> dict:
    """``model`` as a DIM-``width`` network would have it: head_base and the transformer."""
    other = dict(model)
    other["head_base"] = torch.zeros(645, width)
    other["transformer.input_projection.weight"] = torch.zeros(width, width)
    other["transformer.memory_projection.weight"] = torch.zeros(width, 768)
    return other


def test_another_width_or_another_flame_is_mismatched_in_one_line(release, loaded):
    expected, name = release[2], release[3].name
    report = classify_keys(_other_width(loaded.model), expected)
    assert [item["key"] for item in report.mismatched][:1] == ["head_base"] and len(report.mismatched) == 3
    assert report.mismatched[0] == {"key": "head_base", "file": [645, 128], "expected": [645, 256]}
    problem = report.problem(name)
    assert "\n" not in problem and "3 mis-shaped (first head_base: file [645, 128], expected [645, 256])" in problem
    # the checkpoint's FLAME buffers against FLAME's real sizes (head_base too)
    report = classify_keys(loaded.model, expected_release_shapes(loaded.sizes, FlameSizes()))
    keys = [item["key"] for item in report.mismatched]
    assert "flame_model.v_template" in keys and "subdivider._subdivided_faces" in keys
    assert "made for another FLAME model" in report.problem(name)
    # without FLAME buffers, nothing to check
    no_flame = {key: value for key, value in loaded.model.items() if not key.startswith("flame_model.")}
    assert not classify_keys(no_flame, expected).differences


# --------------------------------------------------------------------------- meta_cfg
META = {"MODEL": {"DIM": 256, "N_TRANSFORMER_LAYERS": 2, "SUBDIVISION": 2}, "DATASET": {"POINT_PLANE_SIZE": 296}}
_MISSING = object()


def _meta(section: str, field: str, value) -> dict:
    meta = json.loads(json.dumps(META))
    if value is _MISSING:
        del meta[section][field]
    else:
        meta[section][field] = value
    return meta


@pytest.mark.parametrize(
    "meta, expected",
    [
        (_meta("MODEL", "DIM", 128), "MODEL.DIM is 128, but the release's network works only with 256"),
        (_meta("MODEL", "N_TRANSFORMER_LAYERS", _MISSING), "MODEL.N_TRANSFORMER_LAYERS is missing"),
        (_meta("MODEL", "SUBDIVISION", 3), "SUBDIVISION is 3, but the release's network works only with 0, 1 or 2"),
        (_meta("MODEL", "N_TRANSFORMER_LAYERS", "two"), "MODEL.N_TRANSFORMER_LAYERS is 'two', expected an integer"),
        (_meta("MODEL", "N_TRANSFORMER_LAYERS", 0), "is 0, expected at least 1"),
        (_meta("DATASET", "POINT_PLANE_SIZE", True), "DATASET.POINT_PLANE_SIZE is True, expected an integer"),
        ({"MODEL": META["MODEL"]}, "DATASET.POINT_PLANE_SIZE is missing"),
    ],
    ids=["dim", "no-layers", "subdivision", "text", "zero", "bool", "no-dataset"],
)
def test_odd_or_missing_meta_cfg_values_are_one_line(meta, expected):
    with pytest.raises(CheckpointError) as error:
        release_sizes(meta, "omg_ckpt.pt")
    assert expected in _one_line(error, "omg_ckpt.pt: meta_cfg")


def test_the_transformer_layers_are_cross_checked_against_the_keys():
    model = {f"transformer.decoder.layers.{i}.norm1.weight": torch.ones(2) for i in range(3)}
    assert release_sizes(_meta("MODEL", "N_TRANSFORMER_LAYERS", 3), "x.pt", model).transformer_layers == 3
    with pytest.raises(CheckpointError) as error:
        release_sizes(META, "x.pt", model)
    assert "N_TRANSFORMER_LAYERS gives 2 decoder layers, but the weights have 3" in _one_line(error, "x.pt")


# --------------------------------------------------------------------------- bad files
def _bad_file(kind: str, folder, release) -> tuple:
    """(path, expected text, marker or None) of a bad checkpoint of ``kind``."""
    path, marker = folder / f"{kind}.pt", None
    small = {"head_base": torch.zeros(645, 256)}
    if kind == "truncated":
        shutil.copyfile(release[3], path)
        with open(path, "r+b") as file:
            file.truncate(path.stat().st_size - 4096)
        expected = "not a readable torch file"
    elif kind == "text":
        path.write_text("model: not really\n")
        expected = "not a readable torch file"
    elif kind == "hostile":
        marker = folder / "marker"
        torch.save({"model": small, "meta_cfg": META, "x": _MarkerMaker(marker)}, path)
        expected = "open', which a weights file never holds (refused)"
    elif kind == "hostile-pickle":
        marker = folder / "marker-pickle"
        path.write_bytes(pickle.dumps({"model": _MarkerMaker(marker)}, protocol=2))
        expected = "refused"
    elif kind == "model-not-a-dict":
        torch.save({"model": [torch.zeros(1)], "meta_cfg": META}, path)
        expected = "not an OMG-Avatar release checkpoint"
    elif kind == "model-of-other-things":
        torch.save({"model": {"head_base": 3}, "meta_cfg": META}, path)
        expected = "'model' entry 'head_base' holds a int, expected a tensor"
    elif kind == "meta-not-plain":
        torch.save({"model": small, "meta_cfg": {"MODEL": {"DIM": torch.tensor(256)}}}, path)
        expected = "meta_cfg.MODEL.DIM holds a Tensor, expected plain config values"
    elif kind == "bare-state-dict":
        torch.save({f"layer{i}.weight": torch.zeros(1) for i in range(10)}, path)
        expected = "found 'layer0.weight', 'layer1.weight', 'layer2.weight', 'layer3.weight', ... (10 entries)"
    elif kind == "no-meta":
        torch.save({"model": small}, path)
        expected = "found 'model'"
    else:
        raise AssertionError(kind)
    return path, expected, marker


BAD_KINDS = ["truncated", "text", "hostile", "hostile-pickle", "model-not-a-dict", "model-of-other-things",
             "meta-not-plain", "bare-state-dict", "no-meta"]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_are_one_line_naming_the_file(kind, tmp_path, release):
    path, expected, marker = _bad_file(kind, tmp_path, release)
    with pytest.raises(CheckpointError) as error:
        read_release_checkpoint(path)
    assert expected in _one_line(error, path.name)
    if marker is not None:
        assert not marker.exists()
        torch.load(path, weights_only=False) if kind == "hostile" else pickle.loads(path.read_bytes())
        assert marker.exists()  # what a plain load would have done


def test_the_size_is_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.pt"
    torch.save({"model": {"head_base": torch.zeros(100, 100)}, "meta_cfg": META}, path)
    monkeypatch.setattr(release_checkpoint, "MAX_CHECKPOINT_BYTES", 1000)
    monkeypatch.setattr(release_checkpoint, "read_weights_only", lambda path: pytest.fail("read"))
    with pytest.raises(CheckpointError) as error:
        read_release_checkpoint(path)
    assert "more than a release checkpoint can have (1,000)" in _one_line(error, "big.pt")
    with pytest.raises(CheckpointError, match="release checkpoint not found"):
        read_release_checkpoint(tmp_path / "nope.pt")


# --------------------------------------------------------------------------- omg-avatar info
def test_info_reports_the_release_checkpoint(release, tmp_path, capsys, monkeypatch):
    folder, meta_cfg, _, path = release
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path / "no-models"))
    out = tmp_path / "info.json"
    flame = folder / "synthetic_flame" / "FLAME_with_eye.pt"
    assert main(["info", "--checkpoint", str(path), "--flame", str(flame), "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["meta_cfg"] == meta_cfg and info["flame_vertices"] == 645
    assert (info["missing"], info["unexpected"], info["mismatched"]) == ([], [], [])
    assert info["ignored"] == 1 and info["dinov2_in_checkpoint"] is True
    per_module = json.loads((folder / "state_dict_manifest_synthetic.json").read_text())["per_top_level_module"]
    tensors = {name: module["keys"] for name, module in per_module.items()} | {"percep_loss": 1}
    assert {name: count["tensors"] for name, count in info["modules"].items()} == tensors
    assert info["modules"]["head_base"]["elements"] == 645 * 256
    assert "missing 0, unexpected 0, mis-shaped 0" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["truncated", "text", "hostile", "other-width"])
def test_info_on_a_bad_checkpoint_is_one_line_and_exit_2(kind, release, loaded, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path / "no-models"))
    out = tmp_path / "info.json"
    marker = None
    if kind == "other-width":
        path, expected = tmp_path / "other.pt", "does not fit the release network: 3 mis-shaped (first head_base"
        model = {key: value for key, value in _other_width(loaded.model).items() if not key.startswith(DINO_PREFIX)}
        torch.save({"model": model, "meta_cfg": loaded.meta_cfg}, path)
    else:
        path, expected, marker = _bad_file(kind, tmp_path, release)
    flame = release[0] / "synthetic_flame" / "FLAME_with_eye.pt"
    assert main(["info", "--checkpoint", str(path), "--flame", str(flame), "--json", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith(f"omg-avatar: error: {path.name}: ") and expected in error
    if kind == "other-width":
        assert len(json.loads(out.read_text())["mismatched"]) == 3
    if marker is not None:
        assert not marker.exists()


def test_a_release_checkpoint_loads_into_the_network_and_reproduces_the_fixture(release):
    folder, _, _, path = release
    fixture = ParityFixture.load(folder)
    network = load_release_network(path, fixture.flame_folder)
    assert torch.equal(network.head_base, recipe_tensor("head_base", tuple(network.head_base.shape)))
    with torch.no_grad():
        features = network.transformer(network.head_base, fixture.tensors["dino.multiscale"])
    assert_close_to_scale(features, fixture.tensors["tf.out"], "tf.out")
    template = load_flame_model(fixture.flame_folder / "FLAME_with_eye.pt").v_template
    assert np.allclose(network.flame_model.v_template.numpy(), template)  # FLAME from the bundle, not the zeros


def test_without_dinov2_in_the_checkpoint_the_dinov2_file_is_loaded(release, tmp_path):
    _, meta_cfg, _, path = release
    state = torch.load(path, weights_only=True)["model"]
    vit = {key[len(DINO_PREFIX):]: state.pop(key) for key in [k for k in state if k.startswith(DINO_PREFIX)]}
    lean = tmp_path / "omg_ckpt.pt"
    torch.save({"model": state, "meta_cfg": meta_cfg}, lean)
    bundle = ParityFixture.load(release[0]).flame_folder
    with pytest.raises(ModelFileError, match="dinov2_vitb14_pretrain.pth"):
        load_release_network(lean, bundle, tmp_path / "absent.pth")
    torch.save(vit, tmp_path / "dinov2_vitb14_pretrain.pth")
    network = load_release_network(lean, bundle, tmp_path / "dinov2_vitb14_pretrain.pth")
    assert torch.equal(network.base_dino_model.dino_model.pos_embed, vit["pos_embed"])
    torch.save({key: value for key, value in vit.items() if key != "pos_embed"}, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"short.pth: does not fit .*missing") as error:
        load_release_network(lean, bundle, tmp_path / "short.pth")
    assert "\n" not in str(error.value)


class _PickledConfig(dict):
    """Like the release's ConfigDict: a dict subclass with a config view of another class inside."""

    def __init__(self, values):
        super().__init__(values)
        self._dot_config = _ConfigView(dict(values))


class _ConfigView:
    """Like OmegaConf's view: the content, a type as a value (its reference types), a defaultdict."""

    def __init__(self, content):
        self.content, self.kind, self.flags = content, dict, collections.defaultdict(dict)


def _pickle_as(module_name: str, *classes) -> None:
    """Give ``classes`` the import path ``module_name`` while pickling (the release's code is
    not importable here, just as it is not on a user's machine)."""
    module = types.ModuleType(module_name)
    for cls in classes:
        cls.__module__ = module_name
        setattr(module, cls.__name__, cls)
    sys.modules[module_name] = module


def test_a_config_pickled_as_the_release_codes_own_class_is_read_as_plain_values(release, tmp_path):
    folder, meta_cfg, _, path = release
    content = torch.load(path, weights_only=True)
    _pickle_as("release_config_code", _PickledConfig, _ConfigView)
    try:
        content["meta_cfg"] = _PickledConfig(meta_cfg)
        torch.save(content, tmp_path / "omg_ckpt.pt")
    finally:
        del sys.modules["release_config_code"]
    checkpoint = read_release_checkpoint(tmp_path / "omg_ckpt.pt")
    assert dict(checkpoint.meta_cfg) == meta_cfg and checkpoint.sizes == ReleaseConfig(256, 2, 2)
    with pytest.raises(ModelFileError, match="refers to 'release_config_code._PickledConfig'"):
        read_weights_only(tmp_path / "omg_ckpt.pt")  # without stand-ins: refused, as for any weights file
