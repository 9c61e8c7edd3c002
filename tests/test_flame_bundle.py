"""The OMG-Avatar release's FLAME bundle (``FLAME_with_eye.pt``, ``FLAME_masks.pkl``,
``head_template_mesh.obj``) read safely, every problem one line naming the file, and FLAME posed
the release's way (against smplx's LBS, the algorithm the release uses)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import smplx.lbs
import torch

from core.config import FlameConfig
from core.errors import ModelFileError
from core.flame import find_flame_file, load_flame_model
from core.flame.bundle import load_flame_masks, load_template_faces
from core.flame.files import MODEL_KEYS
from core.flame.release import ReleaseFlame, load_release_flame, release_rodrigues
from synthetic_flame import SyntheticFlame, make_synthetic_flame

N_VERTICES = 2646  # the synthetic FLAME's


@pytest.fixture(scope="module")
def synthetic() -> SyntheticFlame:
    return make_synthetic_flame(seed=0)


def _bundle(synthetic: SyntheticFlame) -> dict:
    """The release's layout: tensors (faces and kintree int64, the root's parent 2**32 - 1)."""
    arrays = synthetic.arrays
    model = {key: torch.tensor(arrays[key].astype(np.int64 if key in ("f", "kintree_table") else np.float32))
             for key in MODEL_KEYS}  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    landmarks = {
        "static_lmk_faces_idx": torch.randint(0, 5280, (51,), generator=generator),
        "static_lmk_bary_coords": torch.rand(51, 3, generator=generator),
        "full_lmk_faces_idx_with_eye": torch.randint(0, 5280, (1, 70), generator=generator),
        "full_lmk_bary_coords_with_eye": torch.rand(1, 70, 3, generator=generator),
    }
    return {"flame_model": model, "lmk_embeddings": landmarks}


@pytest.fixture(scope="module")
def bundle_file(synthetic, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "FLAME_with_eye.pt"
    torch.save(_bundle(synthetic), path)
    return path


def _one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(ModelFileError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


class _RunsACommand:
    """Pickles as a call to os.system, like a malicious file would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


# --------------------------------------------------------------------------- FLAME_with_eye.pt
def test_the_bundle_reads_like_the_other_formats(bundle_file, synthetic):
    model = load_flame_model(bundle_file)
    arrays = synthetic.arrays
    np.testing.assert_array_equal(model.faces, arrays["f"])
    np.testing.assert_allclose(model.v_template, arrays["v_template"], atol=1e-7)  # stored as float32
    np.testing.assert_allclose(model.exprdirs, arrays["shapedirs"][..., 300:], atol=1e-7)
    np.testing.assert_array_equal(model.parents, [-1, 0, 1, 1, 1])
    assert model.source == "FLAME_with_eye.pt" and model.eyelids is None


def test_a_missing_bundle_says_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    message = _one_line_error(load_flame_model, tmp_path / "flame" / "FLAME_with_eye.pt")
    assert str(tmp_path / "flame" / "FLAME_with_eye.pt") in message


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda data: data[: len(data) // 2], r"not a readable torch file \(truncated or corrupt"),
        (lambda data: b"this is a text file, not a model\n", r"not a readable torch file"),
        (lambda data: b"", r"not a readable torch file"),
    ],
    ids=["truncated", "text", "empty"],
)
def test_a_corrupt_bundle_is_one_line(bundle_file, tmp_path, content, message):
    path = tmp_path / "FLAME_with_eye.pt"
    path.write_bytes(content(bundle_file.read_bytes()))
    assert re.match(rf"FLAME_with_eye\.pt: {message}", _one_line_error(load_flame_model, path))


def test_a_bundle_that_would_run_code_is_refused_before_it_runs(synthetic, tmp_path):
    marker = tmp_path / "command_ran"
    bundle = _bundle(synthetic)
    bundle["flame_model"]["v_template"] = _RunsACommand(f"touch {marker}")
    path = tmp_path / "FLAME_with_eye.pt"
    torch.save(bundle, path)
    message = _one_line_error(load_flame_model, path)
    assert message.startswith("FLAME_with_eye.pt: refers to '") and "system" in message and "refused" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda b: b.pop("flame_model"),
            r"key 'flame_model' is missing, expected a dict \(the file has 'lmk_embeddings'\)",
        ),
        (lambda b: b.update(lmk_embeddings=[1, 2]), r"key 'lmk_embeddings' holds a list, expected a dict"),
        (lambda b: b["flame_model"].pop("weights"), r"key 'weights' is missing"),
        (lambda b: b["flame_model"].update(posedirs=torch.zeros(3, 3)), r"key 'posedirs' has shape \(3, 3\)"),
        (lambda b: b["flame_model"].update(J_regressor="dense"), r"key 'J_regressor' holds str, expected a numeric"),
    ],
    ids=["no-flame-model", "landmarks-not-a-dict", "no-weights", "bad-posedirs", "regressor-not-a-tensor"],
)
def test_wrong_keys_name_the_key(synthetic, tmp_path, edit, message):
    bundle = _bundle(synthetic)
    edit(bundle)
    path = tmp_path / "FLAME_with_eye.pt"
    torch.save(bundle, path)
    assert re.match(rf"FLAME_with_eye\.pt: {message}", _one_line_error(load_flame_model, path))


def test_a_bundle_holding_a_list_is_refused(tmp_path):
    path = tmp_path / "FLAME_with_eye.pt"
    torch.save([torch.zeros(3)], path)
    assert "holds a list, expected the dict" in _one_line_error(load_flame_model, path)


def test_the_models_folder_bundle_is_found_when_the_configured_file_is_absent(bundle_file, tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    config = FlameConfig("flame/generic_model.pkl", "flame/mediapipe_landmark_embedding.npz", 300, 100, 5.0)
    assert find_flame_file(None, config) is None
    (tmp_path / "flame").mkdir()
    (tmp_path / "flame" / "FLAME_with_eye.pt").write_bytes(bundle_file.read_bytes())
    assert find_flame_file(None, config) == tmp_path / "flame" / "FLAME_with_eye.pt"
    (tmp_path / "flame" / "generic_model.pkl").write_bytes(b"the configured file wins")
    assert find_flame_file(None, config) == tmp_path / "flame" / "generic_model.pkl"


# --------------------------------------------------------------------------- FLAME_masks.pkl
def _write_masks(path: Path, masks: dict, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(masks, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_masks_read_as_index_arrays(tmp_path, protocol):
    masks = {"neck": np.arange(10, 20), "boundary": np.arange(5, dtype=np.int32), "face": np.array([7])}
    read = load_flame_masks(_write_masks(tmp_path / "FLAME_masks.pkl", masks, protocol), n_vertices=20)
    assert set(read) == set(masks) and read["boundary"].dtype == np.int64
    np.testing.assert_array_equal(read["neck"], masks["neck"])


def test_missing_masks(tmp_path):
    assert "FLAME_masks.pkl" in _one_line_error(load_flame_masks, tmp_path / "FLAME_masks.pkl")


def test_truncated_masks(tmp_path):
    content = pickle.dumps({"neck": np.arange(100), "boundary": np.arange(10)}, protocol=2)
    path = tmp_path / "FLAME_masks.pkl"
    path.write_bytes(content[: len(content) // 2])
    assert _one_line_error(load_flame_masks, path).startswith("FLAME_masks.pkl: not a readable FLAME pickle")


def test_masks_that_would_run_code_are_refused_before_they_run(tmp_path):
    marker = tmp_path / "command_ran"
    path = _write_masks(tmp_path / "FLAME_masks.pkl", {"neck": _RunsACommand(f"touch {marker}")})
    message = _one_line_error(load_flame_masks, path)
    assert message.startswith("FLAME_masks.pkl: refers to '") and "system" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "masks, message",
    [
        ({"neck": np.arange(3)}, r"mask 'boundary' is missing \(the file has neck\)"),
        ({"neck": np.arange(3), "boundary": np.array([0.5])}, r"mask 'boundary' holds shape \(1,\) \(float64\)"),
        ({"neck": [1, 2], "boundary": np.arange(3)}, r"mask 'neck' holds list"),
        ({"neck": np.array([99]), "boundary": np.arange(3)}, r"mask 'neck' has vertex index 99, expected 0..20"),
    ],
    ids=["missing-key", "floats", "a-list", "out-of-range"],
)
def test_wrong_masks_name_the_mask(tmp_path, masks, message):
    path = _write_masks(tmp_path / "FLAME_masks.pkl", masks)
    assert re.match(rf"FLAME_masks\.pkl: {message}", _one_line_error(load_flame_masks, path, n_vertices=20))


# --------------------------------------------------------------------------- head_template_mesh.obj
def test_template_faces_in_every_corner_form(tmp_path):
    path = tmp_path / "head_template_mesh.obj"
    path.write_text(
        "# a comment\nmtllib x.mtl\n" + "v 0 0 0\n" * 5 + "vt 0 0\n"
        "f 1/1/1 2/1/1 3/1/1\nf 2//1 3//1 4//1\nf 3/1 4/1 5/1\nf -1 -2 -3\nf 1 2 3 4\n"
    )
    faces = load_template_faces(path, n_vertices=5)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [1, 2, 3], [2, 3, 4], [4, 3, 2], [0, 1, 2], [0, 2, 3]])
    assert faces.dtype == np.int64


@pytest.mark.parametrize(
    "text, message",
    [
        ("v 0 0 0\n" * 3, r"has no faces"),
        ("v 0 0 0\n" * 3 + "f 1 2 4\n", r"line 4 refers to vertex 4, but only 3 come before it"),
        ("v 0 0 0\n" * 3 + "f 1 2 0\n", r"line 4 refers to vertex 0"),
        ("v 0 0 0\n" * 3 + "f 1 two 3\n", r"line 4 has the face corner 'two', expected a vertex index"),
        ("v 0 0 0\n" * 3 + "f 1 2\n", r"line 4 has a face with 2 corners"),
        ("v 0 0 0\n" * 3 + "f 1 2 3\n", r"has 3 vertices, the FLAME model has 5"),
    ],
    ids=["no-faces", "index-too-large", "index-zero", "not-a-number", "two-corners", "other-vertex-count"],
)
def test_bad_template_meshes_are_one_line(tmp_path, text, message):
    path = tmp_path / "head_template_mesh.obj"
    path.write_text(text)
    assert re.match(rf"head_template_mesh\.obj: {message}", _one_line_error(load_template_faces, path, n_vertices=5))


def test_binary_and_missing_template_meshes(tmp_path):
    path = tmp_path / "head_template_mesh.obj"
    path.write_bytes(b"\x80\x02\xff\xfe" * 10)
    assert _one_line_error(load_template_faces, path).startswith("head_template_mesh.obj: not a readable OBJ")
    assert "head_template_mesh.obj" in _one_line_error(load_template_faces, tmp_path / "nowhere.obj")


# --------------------------------------------------------------------------- FLAME the release's way
def test_release_flame_is_smplx_lbs_with_the_offsets_in_the_template(bundle_file, synthetic):
    """The release poses FLAME with smplx's LBS: template + offsets, then blendshapes, joints
    regressed from that mesh, neck zero, x5. Same arithmetic, so the same float32 bits."""
    flame = load_release_flame(bundle_file)
    generator = torch.Generator().manual_seed(4)
    batch = 2
    shape, expression = torch.randn(batch, 300, generator=generator), torch.randn(batch, 100, generator=generator)
    pose, eyes = 0.3 * torch.randn(batch, 6, generator=generator), 0.2 * torch.randn(batch, 6, generator=generator)
    offsets = 0.01 * torch.randn(batch, N_VERTICES, 3, generator=generator)
    ours = flame(shape, expression, pose, eyes, offsets)

    data = _bundle(synthetic)["flame_model"]
    parents = data["kintree_table"][0].clone()
    parents[0] = -1
    full_pose = torch.cat([pose[:, :3], torch.zeros(batch, 3), pose[:, 3:], eyes], dim=1)
    expected, _ = smplx.lbs.lbs(
        torch.cat([shape, expression], dim=1),
        full_pose,
        data["v_template"][None] + offsets,
        torch.cat([data["shapedirs"][..., :300], data["shapedirs"][..., 300:]], dim=2),
        data["posedirs"].reshape(-1, 36).T,
        data["J_regressor"],
        parents,
        data["weights"],
    )
    assert ours.shape == (batch, N_VERTICES, 3) and ours.dtype == torch.float32
    error = float((ours - 5.0 * expected).abs().max())
    print(f"\nrelease FLAME vs smplx: max error {error:.3g}")
    assert error <= 1e-6
    joints_moved = flame(shape, expression, pose, eyes, offsets) - flame(shape, expression, pose, eyes)
    assert (joints_moved - 5.0 * offsets).abs().max() > 1e-4  # offsets are posed, not just added


def test_release_rodrigues_is_the_identity_at_zero_and_a_rotation_elsewhere():
    rotvecs = torch.cat([torch.zeros(1, 3), 0.7 * torch.randn(8, 3, generator=torch.Generator().manual_seed(1))])
    rotations = release_rodrigues(rotvecs)
    assert torch.equal(rotations[0], torch.eye(3))
    identity = rotations @ rotations.transpose(1, 2)
    torch.testing.assert_close(identity, torch.eye(3).expand(9, 3, 3), atol=1e-6, rtol=0)


def test_release_flame_refuses_too_few_components(bundle_file):
    model = load_flame_model(bundle_file)
    with pytest.raises(ModelFileError, match=r"^FLAME_with_eye\.pt: has 100 expression components, 150 were"):
        ReleaseFlame(model, n_expression=150)
