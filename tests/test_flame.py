"""FLAME files (every release format, safely) and the FLAME layer, against smplx's LBS."""

from __future__ import annotations

import os
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest
import smplx.lbs
import torch
from scipy.spatial.transform import Rotation

from core.config import FlameConfig
from core.errors import ModelFileError
from core.flame import FlameLayer, load_flame_layer, load_flame_model, load_landmark_embedding
from core.flame.lbs import batch_rodrigues, batch_rodrigues_derivative
from core.paths import models_dir, resolve_model_file
from synthetic_flame import (
    SyntheticFlame,
    make_synthetic_flame,
    write_eyelids,
    write_flame_2020_pickle,
    write_flame_2023_pickle,
    write_flame_npz,
    write_landmark_embedding,
)

WRITERS = {
    "generic_model.pkl": write_flame_2020_pickle,
    "flame2023.pkl": write_flame_2023_pickle,
    "flame.npz": write_flame_npz,
}


@pytest.fixture(scope="module")
def synthetic() -> SyntheticFlame:
    return make_synthetic_flame(seed=0)


@pytest.fixture(scope="module")
def model_files(synthetic, tmp_path_factory) -> dict[str, Path]:
    """Each format in its own folder, with eyelid blendshapes beside it."""
    files = {}
    for name, write in WRITERS.items():
        folder = tmp_path_factory.mktemp(name.replace(".", "_"))
        files[name] = write(synthetic, folder / name)
        write_eyelids(synthetic, folder)
    return files


@pytest.fixture(scope="module")
def embedding_file(synthetic, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("embedding")
    return write_landmark_embedding(synthetic, folder / "mediapipe_landmark_embedding.npz")


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_reads_the_same_arrays(name, model_files, synthetic):
    model = load_flame_model(model_files[name])
    arrays = synthetic.arrays
    np.testing.assert_array_equal(model.v_template, arrays["v_template"])
    np.testing.assert_array_equal(model.faces, arrays["f"])
    np.testing.assert_array_equal(model.shapedirs, arrays["shapedirs"][..., :300])
    np.testing.assert_array_equal(model.exprdirs, arrays["shapedirs"][..., 300:])
    np.testing.assert_array_equal(model.posedirs, arrays["posedirs"])
    np.testing.assert_array_equal(model.J_regressor, arrays["J_regressor"])
    np.testing.assert_array_equal(model.lbs_weights, arrays["weights"])
    np.testing.assert_array_equal(model.parents, [-1, 0, 1, 1, 1])
    np.testing.assert_allclose(model.eyelids, synthetic.eyelids, atol=1e-7)  # stored as float32
    assert model.faces.dtype == np.int64 and model.v_template.dtype == np.float64


def test_2020_pickle_holds_chumpy_and_loads_without_it(model_files, synthetic, monkeypatch):
    path = model_files["generic_model.pkl"]
    globals_used = {arg for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}
    assert {"chumpy.ch Ch", "copy_reg _reconstructor", "__builtin__ set"} <= globals_used
    monkeypatch.setitem(sys.modules, "chumpy", None)  # any `import chumpy` now fails
    monkeypatch.setitem(sys.modules, "chumpy.ch", None)
    model = load_flame_model(path)
    np.testing.assert_array_equal(model.exprdirs, synthetic.arrays["shapedirs"][..., 300:])


def test_eyelids_are_optional(synthetic, tmp_path):
    model = load_flame_model(write_flame_npz(synthetic, tmp_path / "flame.npz"))
    layer = FlameLayer(model, n_shape=10, n_expression=10)
    assert model.eyelids is None and not layer.has_eyelids
    assert layer.blenddirs.shape[2] == 20
    with pytest.raises(ValueError, match="no eyelid"):
        layer(eyelids=torch.zeros(1, 2))


def test_embedding_reads_its_three_keys(embedding_file, synthetic):
    embedding = load_landmark_embedding(embedding_file, n_faces=len(synthetic.arrays["f"]))
    np.testing.assert_array_equal(embedding.face_indices, synthetic.embedding["lmk_face_idx"])
    np.testing.assert_array_equal(embedding.barycentric, synthetic.embedding["lmk_b_coords"])
    np.testing.assert_array_equal(embedding.mediapipe_indices, synthetic.embedding["landmark_indices"])
    assert embedding.barycentric.shape == (105, 3)


def test_resolve_model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    assert resolve_model_file("flame/generic_model.pkl") == tmp_path / "flame" / "generic_model.pkl"
    assert resolve_model_file(tmp_path / "elsewhere.pkl") == tmp_path / "elsewhere.pkl"


def test_load_flame_layer_reads_the_embedding_from_the_models_folder(synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    (tmp_path / "flame").mkdir()
    write_flame_2023_pickle(synthetic, tmp_path / "flame" / "flame2023.pkl")
    write_landmark_embedding(synthetic, tmp_path / "flame" / "mediapipe_landmark_embedding.npz")
    config = FlameConfig("flame/flame2023.pkl", "flame/mediapipe_landmark_embedding.npz", 300, 100, 5.0)
    layer = load_flame_layer(resolve_model_file(config.model_file), config)
    assert (layer.n_shape, layer.n_expression, layer.has_landmarks) == (300, 100, True)
    assert layer.landmarks(layer().vertices).shape == (1, 105, 3)


# --------------------------------------------------------------------------- malformed files
def _npz_without(synthetic: SyntheticFlame, path: Path, key: str) -> Path:
    np.savez(path, **{k: v for k, v in synthetic.arrays.items() if k != key})
    return path


def _npz_with(synthetic: SyntheticFlame, path: Path, key: str, value: np.ndarray) -> Path:
    np.savez(path, **{**synthetic.arrays, key: value})
    return path


class _RunsACommand:
    """Pickles as a call to os.system, like a malicious file would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_missing_key_names_file_and_key(synthetic, tmp_path):
    with pytest.raises(ModelFileError, match=r"^flame\.npz: key 'weights' is missing"):
        load_flame_model(_npz_without(synthetic, tmp_path / "flame.npz", "weights"))


def test_wrong_shape_names_file_key_and_expectation(synthetic, tmp_path):
    too_few = synthetic.arrays["shapedirs"][..., :10]
    path = _npz_with(synthetic, tmp_path / "flame.npz", "shapedirs", too_few)
    message = r"flame\.npz: key 'shapedirs' has shape \(2646, 3, 10\), expected \(2646, 3, 300"
    with pytest.raises(ModelFileError, match=message):
        load_flame_model(path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("posedirs", np.zeros((2646, 3, 35)), r"key 'posedirs' has shape \(2646, 3, 35\), expected \(2646,"),
        ("weights", np.full((2646, 5), np.nan), r"key 'weights' has non-finite values"),
        ("f", np.full((3, 3), 99999), r"key 'f' has vertex index 99999, expected < 2646"),
        ("kintree_table", np.array([[-1, 0, 3, 1, 1], [0, 1, 2, 3, 4]]), r"'kintree_table' lists a joint"),
        ("J_regressor", np.array(["not numbers"]), r"key 'J_regressor' holds dtype <U11, expected a numeric"),
    ],
)
def test_bad_values_name_the_key(synthetic, tmp_path, key, value, message):
    with pytest.raises(ModelFileError, match=message):
        load_flame_model(_npz_with(synthetic, tmp_path / "flame.npz", key, value))


def test_pickle_calling_os_system_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "command_ran"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": _RunsACommand(f"touch {marker}")}, protocol=2))
    with pytest.raises(ModelFileError, match=r"^generic_model\.pkl: refers to '(posix|nt|os)\.system'"):
        load_flame_model(path)
    assert not marker.exists()


def test_chumpy_classes_other_than_ch_are_refused(tmp_path):
    path = tmp_path / "generic_model.pkl"
    # GLOBAL 'chumpy.ch_ops add', as a pickled chumpy expression would start
    path.write_bytes(b"\x80\x02cchumpy.ch_ops\nadd\nq\x00.")
    message = r"generic_model\.pkl: chumpy class 'chumpy\.ch_ops\.add' is not supported"
    with pytest.raises(ModelFileError, match=message):
        load_flame_model(path)


def test_truncated_pickle(model_files, tmp_path):
    content = model_files["generic_model.pkl"].read_bytes()
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(content[: len(content) * 2 // 3])
    message = r"^generic_model\.pkl: not a readable FLAME pickle \(truncated or corrupt"
    with pytest.raises(ModelFileError, match=message):
        load_flame_model(path)


@pytest.mark.parametrize(
    "name, message", [("flame2023.pkl", "not a readable FLAME pickle"), ("flame.npz", "not a readable .npz")]
)
def test_not_a_model_file(tmp_path, name, message):
    path = tmp_path / name
    path.write_text("this is a text file, not a model\n")
    with pytest.raises(ModelFileError, match=rf"^{name}: {message}"):
        load_flame_model(path)


def test_pickle_of_something_else(tmp_path):
    path = tmp_path / "flame2023.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelFileError, match=r"flame2023\.pkl: holds a list, expected a dict of arrays"):
        load_flame_model(path)


def test_missing_model_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    with pytest.raises(ModelFileError) as error:
        load_flame_model(resolve_model_file("flame/generic_model.pkl"))
    message = str(error.value)
    assert "\n" not in message
    assert str(models_dir() / "flame" / "generic_model.pkl") in message
    assert str(models_dir() / "flame" / "flame2023.pkl") in message
    assert "flame.is.tue.mpg.de" in message and "licence" in message


def test_missing_embedding_says_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    with pytest.raises(ModelFileError, match="mediapipe_landmark_embedding.npz") as error:
        load_landmark_embedding(tmp_path / "nowhere.npz")
    assert str(tmp_path / "flame" / "mediapipe_landmark_embedding.npz") in str(error.value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("lmk_b_coords", np.zeros((105, 2)), r"key 'lmk_b_coords' has shape \(105, 2\), expected \(105, 3\)"),
        ("landmark_indices", np.full(105, 478), r"key 'landmark_indices' has MediaPipe point index 478, expected"),
        ("lmk_face_idx", np.full(105, 1e6), r"key 'lmk_face_idx' has face index 1000000, expected < 5280"),
        ("lmk_face_idx", np.full(105, 0.5), r"key 'lmk_face_idx' holds non-integer or negative values"),
    ],
)
def test_bad_embedding_names_the_key(synthetic, tmp_path, key, value, message):
    path = tmp_path / "mediapipe_landmark_embedding.npz"
    np.savez(path, **{**synthetic.embedding, key: value})
    with pytest.raises(ModelFileError, match=rf"^mediapipe_landmark_embedding\.npz: {message}"):
        load_landmark_embedding(path, n_faces=len(synthetic.arrays["f"]))


def test_bad_or_unpaired_eyelids_name_the_file(synthetic, tmp_path):
    model_path = write_flame_npz(synthetic, tmp_path / "flame.npz")
    np.save(tmp_path / "l_eyelid.npy", np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(ModelFileError, match=r"^r_eyelid\.npy: missing beside"):
        load_flame_model(model_path)
    np.save(tmp_path / "r_eyelid.npy", np.zeros((2646, 3), dtype=np.float32))
    message = r"^l_eyelid\.npy: has shape \(10, 3\).*expected finite floats of shape \(2646, 3\)"
    with pytest.raises(ModelFileError, match=message):
        load_flame_model(model_path)


def test_layer_refuses_more_components_than_the_file_has(model_files):
    model = load_flame_model(model_files["flame.npz"])
    with pytest.raises(ModelFileError, match=r"flame\.npz: has 100 expression components, 150 were asked for"):
        FlameLayer(model, n_expression=150)


# --------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("name", list(WRITERS))
def test_layer_matches_smplx_lbs(name, model_files):
    model = load_flame_model(model_files[name])
    layer = FlameLayer(model, n_shape=300, n_expression=100)
    generator = torch.Generator().manual_seed(1)
    batch = 3
    shape = torch.randn(batch, 300, generator=generator)
    expression = torch.randn(batch, 100, generator=generator)
    pose = 0.4 * torch.randn(batch, 15, generator=generator)
    eyelids = torch.rand(batch, 2, generator=generator)
    translation = 0.1 * torch.randn(batch, 3, generator=generator)
    ours = layer(shape, expression, pose[:, :3], pose[:, 3:6], pose[:, 6:9], pose[:, 9:], eyelids, translation)

    as_float = lambda array: torch.as_tensor(array, dtype=torch.float32)  # noqa: E731
    n_vertices = model.v_template.shape[0]
    vertices, joints = smplx.lbs.lbs(
        betas=torch.cat([shape, expression, eyelids], dim=1),
        pose=pose,
        v_template=as_float(model.v_template),
        shapedirs=torch.cat(
            [as_float(model.shapedirs), as_float(model.exprdirs), as_float(model.eyelids).permute(1, 2, 0)],
            dim=2,
        ),
        posedirs=as_float(model.posedirs).reshape(n_vertices * 3, -1).T,
        J_regressor=as_float(model.J_regressor),
        parents=torch.as_tensor(model.parents),
        lbs_weights=as_float(model.lbs_weights),
    )
    assert ours.vertices.shape == (batch, n_vertices, 3) and ours.joints.shape == (batch, 5, 3)
    assert ours.vertices.dtype == torch.float32
    vertex_error = (ours.vertices - (vertices + translation[:, None])).abs().max().item()
    joint_error = (ours.joints - (joints + translation[:, None])).abs().max().item()
    print(f"\n{name}: max |vertex - smplx| = {vertex_error:.2e} m, max |joint - smplx| = {joint_error:.2e} m")
    assert vertex_error < 1e-5 and joint_error < 1e-5
    assert (ours.vertices - layer().vertices).abs().max() > 1e-2  # the parameters did something


def test_layer_defaults_to_the_template(model_files):
    model = load_flame_model(model_files["flame2023.pkl"])
    vertices, joints = FlameLayer(model)()
    np.testing.assert_allclose(vertices[0].numpy(), model.v_template, atol=1e-6)
    np.testing.assert_allclose(joints[0].numpy(), model.J_regressor @ model.v_template, atol=1e-6)


def test_landmarks_are_barycentric_points_on_the_embedding_faces(model_files, embedding_file, synthetic):
    model = load_flame_model(model_files["flame2023.pkl"])
    embedding = load_landmark_embedding(embedding_file)
    layer = FlameLayer(model, embedding=embedding)
    vertices = layer(jaw=torch.tensor([[0.2, 0.0, 0.0]])).vertices
    corners = vertices[0].numpy()[model.faces[embedding.face_indices]]  # [105, 3 corners, 3]
    expected = np.einsum("lc,lcd->ld", embedding.barycentric, corners)
    np.testing.assert_allclose(layer.landmarks(vertices)[0].numpy(), expected, atol=1e-6)


def test_rodrigues_matches_scipy():
    generator = torch.Generator().manual_seed(3)
    rotvecs = torch.randn(25, 3, generator=generator, dtype=torch.float64)
    rotvecs[20:] *= 1e-5
    expected = Rotation.from_rotvec(rotvecs.numpy()).as_matrix()
    np.testing.assert_allclose(batch_rodrigues(rotvecs).numpy(), expected, atol=1e-12)


def test_rodrigues_derivative_matches_central_differences_and_is_exact_at_zero():
    generator = torch.Generator().manual_seed(2)
    directions = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=1, keepdim=True)
    angles = torch.tensor([2.0, 0.5, 0.11, 0.09, 0.011, 1e-3])  # either side of the Taylor-series switch at 0.1
    rotvecs = (angles[:, None, None] * directions[None]).reshape(-1, 3)
    step, axes = 1e-6, torch.eye(3, dtype=torch.float64)
    central = torch.stack(
        [(batch_rodrigues(rotvecs + step * a) - batch_rodrigues(rotvecs - step * a)) / (2 * step) for a in axes], dim=1
    )
    torch.testing.assert_close(batch_rodrigues_derivative(rotvecs), central, rtol=0, atol=1e-9)
    skew = lambda x, y, z: torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float64)  # noqa: E731
    at_zero = batch_rodrigues_derivative(torch.zeros(1, 3, dtype=torch.float64))[0]
    torch.testing.assert_close(at_zero, torch.stack([skew(*axis) for axis in torch.eye(3)]), rtol=0, atol=0)
