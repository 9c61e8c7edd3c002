"""Fitting FLAME with the OMG-Avatar release's own landmarks: the MediaPipe-to-iBUG-68 table
(checked on real portraits), the reader of ``FLAME_with_eye.pt``'s iBUG-68 embedding, the choice
of embedding in ``load_flame_layer``, and fits of real photo landmarks with only that file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import load_config
from core.errors import ModelFileError
from core.flame.files import RELEASE_LANDMARK_KEYS, load_release_landmark_embedding
from core.flame.ibug68 import (
    BROWS,
    EYES,
    FITTED_POINTS,
    INNER_LIPS,
    JAW,
    MEDIAPIPE_OF_IBUG68,
    NOSE_BRIDGE,
    NOSTRILS,
    OUTER_LIPS,
)
from core.flame.layer import FlameLayer, load_flame_layer
from core.flame.lbs import batch_rodrigues
from core.flame.params import FlameParams
from core.tracking.flame_tracking import fit_photo, fitting_camera
from core.tracking.photo import prepare_portrait
from official_parity import parity_folder
from synthetic_flame import (
    SyntheticFlame,
    make_synthetic_flame,
    release_landmark_embedding,
    write_flame_npz,
    write_landmark_embedding,
    write_release_bundle,
)

CONFIG = load_config("paper")
CROP = CONFIG.image_size  # the crop the landmarks are in, and fitted at
FRONTAL_PORTRAITS = ("einstein", "woman_pearls", "man_bw_2048")
RELEASE_FILE = "FLAME_with_eye.pt"
FACES_KEY, WEIGHTS_KEY = RELEASE_LANDMARK_KEYS
SYNTHETIC_FACES = 5280  # the synthetic FLAME's (head and eyeballs)


def _crop_landmarks(samples_dir: Path, name: str) -> np.ndarray:
    """[478, 3] MediaPipe landmarks of a sample portrait, in the pixels of its crop."""
    return prepare_portrait(samples_dir / "photos" / f"{name}.jpg", CONFIG.tracking).crop.landmarks


@pytest.fixture(scope="module")
def portraits(samples_dir) -> dict[str, np.ndarray]:
    return {name: _crop_landmarks(samples_dir, name) for name in FRONTAL_PORTRAITS}


@pytest.fixture(scope="module")
def synthetic(portraits) -> SyntheticFlame:
    """The synthetic FLAME with its landmarks placed where einstein.jpg's face has them."""
    return make_synthetic_flame(seed=0, face_landmarks=portraits["einstein"])


@pytest.fixture(scope="module")
def release_file(synthetic, portraits, tmp_path_factory) -> Path:
    """The synthetic FLAME as the release's FLAME_with_eye.pt, its iBUG-68 points where
    einstein.jpg's face has them."""
    embedding = release_landmark_embedding(synthetic, portraits["einstein"], MEDIAPIPE_OF_IBUG68)
    return write_release_bundle(synthetic, tmp_path_factory.mktemp("release") / RELEASE_FILE, embedding)


@pytest.fixture()
def models(tmp_path, monkeypatch) -> Path:
    """An empty models folder (``$OMG_AVATAR_MODELS``) with its ``flame/`` folder."""
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    (tmp_path / "flame").mkdir()
    return tmp_path


def _installed(release_file: Path, models: Path) -> Path:
    """``release_file`` copied into the models folder's ``flame/``, as a user puts it."""
    return Path(shutil.copy(release_file, models / "flame" / RELEASE_FILE))


def _one_line_error(call, *args) -> str:
    with pytest.raises(ModelFileError) as error:
        call(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- the table
def test_the_table_names_68_distinct_mediapipe_points_in_groups():
    table = np.array(MEDIAPIPE_OF_IBUG68)
    assert table.shape == (68,) and len(set(table)) == 68
    assert table.min() >= 0 and table.max() < 478
    groups = [JAW, *BROWS, NOSE_BRIDGE, NOSTRILS, *EYES, OUTER_LIPS, INNER_LIPS]
    assert [i for group in groups for i in group] == list(range(68))
    assert list(FITTED_POINTS) == list(range(17, 68))
    assert table[36] == 33 and table[45] == 263  # the outer eye corners, the subject's right first


@pytest.mark.parametrize("name", FRONTAL_PORTRAITS)
def test_the_table_has_the_ibug_geometry_on_a_real_face(portraits, name):
    points = portraits[name][list(MEDIAPIPE_OF_IBUG68), :2]
    x, y = points[:, 0], points[:, 1]
    width = x[16] - x[0]
    height = y[8] - (y[36] + y[45]) / 2  # eye corners to chin
    jaw = np.array(JAW)
    # jaw: left to right (its ends run almost vertically, so they may tie), 8 the lowest, the ends
    # level with the outer eye corners, the mouth corners' height between 3 and 5 (13 and 11)
    assert (np.diff(x[jaw]) > -0.01 * width).all() and (np.diff(x[2:15]) > 0).all()
    assert np.argmax(y[jaw]) == 8 and y[8] == y.max()
    assert abs(y[0] - y[36]) < 0.12 * height and abs(y[16] - y[45]) < 0.12 * height
    assert y[3] < y[48] < y[5] and y[13] < y[54] < y[11]
    # brows: the subject's right on the image's left, each from the image's left, above the eyes
    right_brow, left_brow = (np.array(brow) for brow in BROWS)
    assert x[right_brow].max() < x[left_brow].min()
    assert (np.diff(x[right_brow]) > 0).all() and (np.diff(x[left_brow]) > 0).all()
    assert y[17:27].max() < y[[37, 38, 43, 44]].min()
    # eyes: side by side, corners in order, upper lids above lower lids
    right_eye, left_eye = (np.array(eye) for eye in EYES)
    assert x[right_eye].max() < x[left_eye].min()
    assert x[36] < x[39] and x[42] < x[45]
    assert x[36] < x[37] < x[38] < x[39] and x[39] > x[40] > x[41] > x[36]
    assert x[42] < x[43] < x[44] < x[45] and x[45] > x[46] > x[47] > x[42]
    assert y[37] < y[41] and y[38] < y[40] and y[43] < y[47] and y[44] < y[46]
    # nose: the bridge going down between the eyes to the tip, the nostrils below it, in order
    assert (np.diff(y[np.array(NOSE_BRIDGE)]) > 0).all() and y[27] < y[30]
    assert x[39] < x[30] < x[42]
    assert (np.diff(x[np.array(NOSTRILS)]) > 0).all() and y[30] < y[33]
    # mouth: below the nose, corners in order, upper lip above lower lip, under the nose tip
    assert x[48] < x[54] and x[60] < x[64] and y[33] < y[51]
    assert (np.diff(x[48:55]) > 0).all() and (np.diff(x[[54, 55, 56, 57, 58, 59, 48]]) < 0).all()
    assert y[51] < y[57] and y[51] < y[62] and y[66] < y[57]
    assert y[62] <= y[66] + 1.0  # the inner lips touch when the mouth is closed
    assert x[48] < x[51] < x[54] and x[48] < x[57] < x[54]


# --------------------------------------------------------------------------- the reader
def test_the_parity_fixtures_embedding_is_read_at_the_fitted_points():
    path = parity_folder() / "synthetic_flame" / RELEASE_FILE
    stored = torch.load(path, weights_only=True)["lmk_embeddings"]
    embedding = load_release_landmark_embedding(path, n_faces=1252)
    np.testing.assert_array_equal(embedding.face_indices, stored[FACES_KEY][0, 17:68].numpy())
    np.testing.assert_allclose(embedding.barycentric, stored[WEIGHTS_KEY][0, 17:68].double().numpy())
    np.testing.assert_array_equal(embedding.mediapipe_indices, MEDIAPIPE_OF_IBUG68[17:])
    assert embedding.face_indices.dtype == embedding.mediapipe_indices.dtype == np.int64


MISSING = object()  # the key is deleted


@pytest.mark.parametrize(
    "key, value, message",
    [
        (FACES_KEY, MISSING, f"key 'lmk_embeddings/{FACES_KEY}' is missing"),
        (WEIGHTS_KEY, MISSING, f"key 'lmk_embeddings/{WEIGHTS_KEY}' is missing"),
        (FACES_KEY, torch.zeros(1, 68, dtype=torch.int64), rf"key '{FACES_KEY}' has shape \(1, 68\)"),
        (FACES_KEY, torch.zeros(70, dtype=torch.int64), rf"key '{FACES_KEY}' has shape \(70,\)"),
        (FACES_KEY, torch.full((1, 70), SYNTHETIC_FACES),
         f"key '{FACES_KEY}' has face index {SYNTHETIC_FACES}, expected < {SYNTHETIC_FACES}"),
        (FACES_KEY, torch.full((1, 70), -1), f"key '{FACES_KEY}' holds non-integer or negative values"),
        (FACES_KEY, torch.full((1, 70), 0.5), f"key '{FACES_KEY}' holds non-integer or negative values"),
        (WEIGHTS_KEY, torch.ones(1, 70, 2), rf"key '{WEIGHTS_KEY}' has shape \(1, 70, 2\)"),
        (WEIGHTS_KEY, torch.full((1, 70, 3), float("nan")), f"key '{WEIGHTS_KEY}' has non-finite values"),
        (WEIGHTS_KEY, "weights", f"key '{WEIGHTS_KEY}' holds str, expected a numeric array"),
    ],
)  # fmt: skip
def test_a_broken_embedding_is_one_line_naming_file_and_key(release_file, synthetic, tmp_path, key, value, message):
    bundle = torch.load(release_file, weights_only=True)
    path = tmp_path / RELEASE_FILE
    if value is MISSING:
        del bundle["lmk_embeddings"][key]
    else:
        bundle["lmk_embeddings"][key] = value
    torch.save(bundle, path)
    assert len(synthetic.arrays["f"]) == SYNTHETIC_FACES
    error = _one_line_error(load_release_landmark_embedding, path, SYNTHETIC_FACES)
    assert error.startswith(f"{RELEASE_FILE}: ") and re.search(message, error), error


def test_a_bundle_without_lmk_embeddings_is_one_line(release_file, tmp_path):
    bundle = torch.load(release_file, weights_only=True)
    path = tmp_path / RELEASE_FILE
    bundle["lmk_embeddings"] = [1, 2]
    torch.save(bundle, path)
    error = _one_line_error(load_release_landmark_embedding, path, SYNTHETIC_FACES)
    assert error.startswith(f"{RELEASE_FILE}: key 'lmk_embeddings' holds a list, expected a dict")


# --------------------------------------------------------------------------- the choice
def test_the_mediapipe_embedding_is_chosen_when_it_is_there(release_file, synthetic, models):
    flame_file = _installed(release_file, models)
    write_landmark_embedding(synthetic, models / CONFIG.flame.landmark_embedding_file)
    layer = load_flame_layer(flame_file, CONFIG.flame)
    np.testing.assert_array_equal(layer.landmark_mediapipe.numpy(), synthetic.embedding["landmark_indices"])


def test_the_bundles_landmarks_are_chosen_without_it(release_file, synthetic, models):
    flame_file = _installed(release_file, models)
    layer = load_flame_layer(flame_file, CONFIG.flame)
    np.testing.assert_array_equal(layer.landmark_mediapipe.numpy(), MEDIAPIPE_OF_IBUG68[17:])
    assert (layer.n_shape, layer.n_expression) == (300, 100)
    assert not (models / CONFIG.flame.landmark_embedding_file).exists()


def test_an_explicit_embedding_file_still_wins(release_file, synthetic, models, tmp_path_factory):
    flame_file = _installed(release_file, models)
    elsewhere = write_landmark_embedding(synthetic, tmp_path_factory.mktemp("elsewhere") / "embedding.npz")
    layer = load_flame_layer(flame_file, CONFIG.flame, elsewhere)
    assert layer.landmark_mediapipe.shape == (len(synthetic.embedding["landmark_indices"]),)


def test_without_either_the_error_names_the_missing_file(synthetic, models):
    flame_file = write_flame_npz(synthetic, models / "flame" / "generic_model.npz")
    error = _one_line_error(load_flame_layer, flame_file, CONFIG.flame)
    expected = models / CONFIG.flame.landmark_embedding_file
    assert error.startswith(f"mediapipe_landmark_embedding.npz not found at {expected}, ")
    assert "generic_model.npz carries no landmarks" in error and "FLAME_with_eye.pt" in error


# --------------------------------------------------------------------------- fitting
def _reprojected(layer: FlameLayer, fit: FlameParams) -> np.ndarray:
    """[L, 2] the fitted embedded landmarks in crop pixels, posed by the layer itself (FLAME's LBS)."""

    def batch(values: np.ndarray, size: int) -> torch.Tensor:
        return torch.as_tensor(np.pad(values, (0, size - len(values))), dtype=torch.float32)[None]

    vertices = layer(
        batch(fit.shape, layer.n_shape), batch(fit.expression, layer.n_expression), jaw=batch(fit.jaw, 3),
        eyes=batch(fit.eyes, 6), eyelids=batch(fit.eyelids, 2) if layer.has_eyelids else None,
    ).vertices.double()[0]  # fmt: skip
    head_rotation = batch_rodrigues(torch.as_tensor(fit.rotation)[None])[0]
    world = CONFIG.flame.scale * vertices @ head_rotation.T + torch.as_tensor(fit.translation)
    landmarks = layer.landmarks(world[None].float()).double()[0]
    return fitting_camera(CONFIG, CROP).project(landmarks)[0].numpy()


def test_a_real_photo_is_fitted_with_only_the_release_file(release_file, portraits, models):
    landmarks = portraits["einstein"]
    layer = load_flame_layer(_installed(release_file, models), CONFIG.flame)
    fit, _ = fit_photo(layer, CONFIG, landmarks, CROP)

    errors = np.linalg.norm(_reprojected(layer, fit) - landmarks[layer.landmark_mediapipe.numpy(), :2], axis=1)
    rms = float(np.sqrt(np.mean(errors**2)))
    print(f"\nrelease landmarks on einstein.jpg: rms {rms:.2f} px, worst {errors.max():.2f} px at {CROP} px")
    assert layer.landmark_mediapipe.shape == (51,)
    assert rms < 2.0 and errors.max() < 4.0 and fit.residual_px == pytest.approx(rms, abs=0.05)
    # a frontal portrait: the head faces the camera, centred where the fitting camera looks
    assert np.degrees(np.linalg.norm(fit.rotation)) < 10.0
    assert np.linalg.norm(fit.translation) < 0.1 * CONFIG.camera.distance
    assert np.linalg.norm(fit.jaw) < 0.1  # radians: the mouth is closed


def test_the_parity_fixtures_flame_file_fits_to_finite_numbers(portraits, models):
    flame_file = parity_folder() / "synthetic_flame" / RELEASE_FILE
    layer = load_flame_layer(flame_file, CONFIG.flame)  # random landmarks on a 645-vertex head
    assert (layer.n_shape, layer.n_expression, layer.v_template.shape[0]) == (300, 100, 645)
    fit, camera = fit_photo(layer, CONFIG, portraits["einstein"], CROP)
    values = [fit.shape, fit.expression, fit.jaw, fit.eyes, fit.rotation, fit.translation, [fit.residual_px]]
    assert all(np.isfinite(v).all() for v in values)
    assert np.isfinite(camera.R).all() and np.isfinite(camera.t).all()
