"""Training pairs: the dataset layout's manifest and fixed validation split, deterministic
(source, driving) pairs from one clip, frames resized with their cameras, the released
network's FLAME coefficients and ``[R | T]`` cameras, and batching."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from core.dataset.layout import DatasetError, read_manifest, read_params, validation_split, write_clip
from core.geometry.release_camera import camera_from_release
from core.train.pairs import PairDataset, collate_pairs
from synthetic_pairs import EXPRESSIONS, train_config, write_flame, write_synthetic_dataset

CONFIG = train_config()


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    return write_synthetic_dataset(root / "data", CONFIG, write_flame(root / "flame"), clips=4, frames=3)


def pairs(root, split="train", size=64, seed=0) -> PairDataset:
    return PairDataset(root, split, size, seed)


def test_the_validation_split_is_a_seeded_hash_stable_when_clips_are_added():
    names = [f"clip_{i:04d}" for i in range(400)]
    held_out = validation_split(names, 0.1, seed=0)
    assert 20 < len(held_out) < 60
    more = validation_split(names + [f"new_{i}" for i in range(100)], 0.1, seed=0)
    assert set(held_out) == {name for name in more if name.startswith("clip_")}
    assert set(validation_split(names, 0.1, seed=1)) != set(held_out)
    assert validation_split(names[:3], 0.0001, seed=0) and not validation_split(names[:3], 0.0, seed=0)


def test_train_and_validation_pairs_come_from_disjoint_clips_listed_in_the_manifest(dataset_dir):
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    train, validation = pairs(dataset_dir), pairs(dataset_dir, "validation")
    assert set(validation.clips) == set(manifest["validation"]) and len(validation.clips) >= 1
    assert not set(train.clips) & set(validation.clips)
    assert len(train) == 3 * len(train.clips) and len(validation) == 3 * len(validation.clips)


def test_pairs_are_two_frames_of_one_clip_fixed_by_seed_epoch_and_index(dataset_dir):
    dataset = pairs(dataset_dir)
    chosen = [dataset.frames_of(i) for i in range(len(dataset))]
    for index, (clip, source, driving) in enumerate(chosen):
        assert source != driving
        assert (clip, driving) == (dataset.clips[index // 3], index % 3)  # every frame drives once an epoch
    assert chosen == [pairs(dataset_dir).frames_of(i) for i in range(len(dataset))]
    dataset.set_epoch(1)
    assert [dataset.frames_of(i) for i in range(len(dataset))] != chosen
    assert [pairs(dataset_dir, seed=5).frames_of(i) for i in range(len(dataset))] != chosen


def test_a_pair_holds_images_release_coefficients_and_cameras_at_the_asked_size(dataset_dir):
    full, half = pairs(dataset_dir)[0], pairs(dataset_dir, size=32)[0]
    clip, source, _ = pairs(dataset_dir).frames_of(0)
    stored = read_params(dataset_dir / "clips" / clip, 3)
    for frame in (full.source, full.driving):
        assert frame.image.shape == (3, 64, 64)
        assert 0 <= frame.image.min() and frame.image.max() <= 1 and frame.image.max() > 0.3
        pose = frame.pose
        assert pose.shape.shape == (1, 300) and pose.expression.shape == (1, 100) and pose.eyes.shape == (1, 6)
        assert pose.expression[0, EXPRESSIONS:].abs().max() == 0 and pose.eyes.abs().max() == 0  # padded, not stored
        assert pose.pose[0, :3].abs().max() == 0  # the head pose is the camera's
    np.testing.assert_array_equal(full.source.pose.pose[0, 3:].numpy(), stored["jaw"][source].astype(np.float32))
    assert not torch.equal(full.source.pose.expression, full.driving.pose.expression)
    # the release's [R | T] is the frame's camera
    seen = camera_from_release(full.source.transform[0], 64)
    np.testing.assert_allclose(seen.R, full.source.camera.R, atol=1e-6)
    np.testing.assert_allclose(seen.t, full.source.camera.t, atol=1e-5)
    np.testing.assert_allclose(seen.K, full.source.camera.K, atol=1e-9)
    assert half.source.image.shape == (3, 32, 32)
    assert (half.source.camera.width, half.source.camera.height) == (32, 32)
    np.testing.assert_allclose(half.source.camera.K[:2], full.source.camera.K[:2] / 2)
    torch.testing.assert_close(half.source.transform, full.source.transform)


def test_collate_stacks_pairs_with_cameras_as_tuples(dataset_dir):
    dataset = pairs(dataset_dir)
    batch = collate_pairs([dataset[0], dataset[4], dataset[7]])
    assert batch.source.image.shape == (3, 3, 64, 64) and batch.driving.transform.shape == (3, 3, 4)
    assert batch.driving.pose.expression.shape == (3, 100) and batch.source.pose.pose.shape == (3, 6)
    assert isinstance(batch.driving.cameras, tuple) and len(batch.driving.cameras) == 3
    assert batch.driving.cameras[1] is not batch.driving.cameras[0]
    torch.testing.assert_close(batch.driving.image[1], dataset[4].driving.image)
    torch.testing.assert_close(batch.source.pose.shape[2], dataset[7].source.pose.shape[0])


@pytest.mark.parametrize(
    "change, message",
    [({"rotation": np.full((2, 3), 0.1)}, "FLAME rotation not zero"), ({"focal": 8.0}, "camera focal 8")],
)
def test_frames_outside_the_release_convention_are_one_line_dataset_errors(tmp_path, dataset_dir, change, message):
    clip, _, _ = pairs(dataset_dir).frames_of(0)
    params = {key: value[:2] for key, value in read_params(dataset_dir / "clips" / clip, 3).items()}
    if "focal" in change:
        params["K"][:, 0, 0] = params["K"][:, 1, 1] = change.pop("focal") * 32
    params.update(change)
    image = np.zeros((2, 64, 64, 3), np.uint8)
    write_clip(tmp_path / "clips" / "a", image, image[..., 0], params)
    manifest = {"format": "omg-avatar-pairs", "version": 1, "clips": [{"name": "a", "frames": 2}], "validation": []}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=message) as error:
        pairs(tmp_path)[0]
    assert "\n" not in str(error.value)


def test_missing_or_malformed_datasets_are_one_line_errors(tmp_path, dataset_dir):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        read_manifest(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no manifest.json"):
        read_manifest(tmp_path)
    manifest = {"format": "omg-avatar-pairs", "version": 1, "clips": [{"name": "a", "frames": 2}], "validation": []}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="1 clip folder\\(s\\) missing"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(DatasetError, match="not an omg-avatar-pairs manifest"):
        read_manifest(tmp_path)


def test_damaged_or_oversized_params_are_one_line_errors_before_any_array_is_read(tmp_path, dataset_dir):
    clip = pairs(dataset_dir).clips[0]
    params = read_params(dataset_dir / "clips" / clip, 3)
    good = (dataset_dir / "clips" / clip / "params.npz").read_bytes()
    cases = {
        "not a zip": (b"not an archive", "not a readable .npz archive"),
        "cut short": (good[: len(good) // 2], "not a readable .npz archive"),
    }
    unclosed = io.BytesIO()  # a header that numpy's parser and its tokenizer fallback both refuse
    with zipfile.ZipFile(unclosed, "w") as archive:
        archive.writestr("K.npy", _npy_header((3, 3, 3)).replace(b"(3, 3, 3)", b"(3, 3, 3 ") + b"\0" * 216)
    cases["header bracket left open"] = (unclosed.getvalue(), "damaged .*'K' is not a .npy array")
    huge = io.BytesIO()  # declares 10**12 rows without holding them
    with zipfile.ZipFile(huge, "w") as archive:
        archive.writestr("K.npy", _npy_header((10**12, 3, 3)) + b"\0" * 64)
    cases["huge"] = (huge.getvalue(), r"damaged .*'K' declares the shape \[1000000000000, 3, 3\]")
    wide = io.BytesIO()
    np.savez(wide, **params | {"landmarks": np.zeros((3, 5000, 3), np.float32)})
    cases["too many values a frame"] = (wide.getvalue(), "not of 3 rows of up to 4096 values each: landmarks")
    for name, (data, message) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.npz").write_bytes(data)
        with pytest.raises(DatasetError, match=message) as error:
            read_params(tmp_path / name, 3)
        assert "\n" not in str(error.value), name


def _npy_header(shape) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()
