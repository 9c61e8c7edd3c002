"""``omg-avatar preprocess`` on the sample videos: the dataset layout it writes (frames on
black, masks, landmarks, cameras, FLAME fields with a FLAME file), resuming, a broken video
skipped without leftovers, the same files with two workers, PairDataset reading it and one
training step on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import main
from core.config import load_config
from core.dataset.layout import read_manifest
from core.train.pairs import PairDataset, collate_pairs
from core.train.preprocess import sample_indices
from core.train.trainer import ModelFiles, Trainer, TrainOptions
from network_files import frontal_face_landmarks, write_release_flame_bundle
from synthetic_pairs import train_config

pytestmark = pytest.mark.samples

FRAMES = 3
VIDEOS = ("talking_d0.mp4", "talking_d18.mp4")
CONFIG = load_config("paper")


def link_videos(folder, samples_dir, names=VIDEOS):
    """A VIDEO_DIR of links to sample videos (the samples stay where they are)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(samples_dir / "videos" / name)
    return folder


def preprocess(videos, dataset, *options, frames=FRAMES) -> dict:
    """Run the command in this process and return its JSON summary."""
    summary = dataset.parent / f"{dataset.name}_summary.json"
    args = ["preprocess", str(videos), "-o", str(dataset), "--frames-per-clip", str(frames), "--json", str(summary)]
    assert main([*args, *options]) == 0
    return json.loads(summary.read_text())


def clip_files(dataset) -> dict[str, bytes]:
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted((dataset / "clips").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def videos(tmp_path_factory, samples_dir):
    return link_videos(tmp_path_factory.mktemp("videos"), samples_dir)


@pytest.fixture(scope="module")
def dataset(videos):
    root = videos.parent / "dataset"
    summary = preprocess(videos, root, "--no-flame")
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 0, 0)
    return root


def test_sampled_frames_are_distinct_and_spread_over_the_video():
    assert sample_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert sample_indices(3, 50).tolist() == [0, 1, 2]


def test_every_clip_has_the_requested_frames_on_black_with_masks_landmarks_and_cameras(dataset):
    manifest = read_manifest(dataset)
    assert manifest.frames == {"talking_d0": FRAMES, "talking_d18": FRAMES}
    assert len(manifest.validation) == 1
    for name in manifest.frames:
        clip = manifest.clip_dir(name)
        assert sorted(p.name for p in (clip / "frames").iterdir()) == [f"{i:06d}.png" for i in range(FRAMES)]
        for index in range(FRAMES):
            image = np.asarray(Image.open(clip / "frames" / f"{index:06d}.png"))
            mask = np.asarray(Image.open(clip / "masks" / f"{index:06d}.png"))
            assert image.shape == (512, 512, 3) and mask.shape == (512, 512)
            assert 0.1 < (mask == 0).mean() < 0.9  # a portrait and a background
            assert image[mask == 0].max() == 0 and image[mask == 255].mean() > 20
        with np.load(clip / "params.npz") as params:
            assert set(params.files) == {"landmarks", "K", "R", "t"}  # no FLAME file: no FLAME fields
            landmarks = params["landmarks"]
            assert landmarks.shape == (FRAMES, 478, 3) and landmarks.dtype == np.float32
            assert params["K"].shape == (FRAMES, 3, 3) and params["t"].shape == (FRAMES, 3)
            assert np.allclose(params["R"] @ params["R"].transpose(0, 2, 1), np.eye(3), atol=1e-5)
        # The landmarks sit on the face: inside the crop and on the portrait mask.
        x, y = np.floor(landmarks[0, :, :2]).astype(int).T
        assert (0 <= x).all() and (x < 512).all() and (0 <= y).all() and (y < 512).all()
        first_mask = np.asarray(Image.open(clip / "masks" / "000000.png"))
        assert (first_mask[y, x] > 127).mean() > 0.95


def test_a_rerun_skips_finished_clips_without_touching_them(videos, dataset):
    before = {p: p.stat().st_mtime_ns for p in (dataset / "clips").rglob("*")}
    contents = clip_files(dataset)
    summary = preprocess(videos, dataset, "--no-flame")
    assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 2, 0)
    assert summary["seconds"] < 5.0
    assert {p: p.stat().st_mtime_ns for p in (dataset / "clips").rglob("*")} == before
    assert clip_files(dataset) == contents
    assert read_manifest(dataset).frames == {"talking_d0": FRAMES, "talking_d18": FRAMES}


def test_a_broken_video_is_reported_and_skipped_without_leftovers(tmp_path, samples_dir):
    videos = link_videos(tmp_path / "videos", samples_dir, VIDEOS[:1])
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 50)
    summary = preprocess(videos, tmp_path / "dataset", "--no-flame")
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert "broken" in summary["failures"] and "cannot open" in summary["failures"]["broken"]
    assert sorted(p.name for p in (tmp_path / "dataset" / "clips").iterdir()) == ["talking_d0"]
    assert read_manifest(tmp_path / "dataset").frames == {"talking_d0": FRAMES}


def test_two_workers_write_the_same_files_as_one(videos, dataset):
    parallel = videos.parent / "parallel"
    summary = preprocess(videos, parallel, "--no-flame", "--workers", "2")
    assert summary["done"] == 2 and summary["workers"] == 2
    assert clip_files(parallel) == clip_files(dataset)
    assert (parallel / "manifest.json").read_bytes() == (dataset / "manifest.json").read_bytes()


def test_pair_dataset_reads_the_preprocessed_clips(dataset):
    train = PairDataset(dataset, "train", 128, seed=0)
    validation = PairDataset(dataset, "validation", 128, seed=0)
    assert len(train) == len(validation) == FRAMES
    batch = collate_pairs([train[0], train[1]])
    assert batch.source.image.shape == (2, 3, 128, 128) and batch.driving.transform.shape == (2, 3, 4)
    assert not batch.source.pose.shape.any()  # no FLAME file: no coefficients stored, the mean face
    assert batch.driving.cameras[0].width == 128
    pair = train[0]
    assert not torch.equal(pair.source.image, pair.driving.image)


def test_with_a_flame_file_the_clips_hold_the_fit_and_its_camera_and_train(videos, samples_dir, tmp_path, monkeypatch):
    models = tmp_path / "models"  # the release's FLAME bundle: training needs it, preprocessing fits its landmarks
    flame = write_release_flame_bundle(models / "flame", frontal_face_landmarks(samples_dir, CONFIG))
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(models))
    dataset = tmp_path / "dataset"
    summary = preprocess(videos, dataset, "--flame", str(flame))
    assert summary["done"] == 2 and summary["flame_file"] == str(flame)
    with np.load(dataset / "clips" / "talking_d0" / "params.npz") as params:
        assert params["shape"].shape == (FRAMES, CONFIG.flame.n_shape)
        assert params["expression"].shape == (FRAMES, CONFIG.tracking.fitter.n_expression)
        assert params["jaw"].shape == (FRAMES, 3) and params["eyes"].shape == (FRAMES, 6)
        assert params["landmarks"].shape == (FRAMES, 478, 3)
        assert np.array_equal(params["shape"][0], params["shape"][-1])  # one calibrated identity
        assert np.abs(params["expression"]).max() > 0
        assert not np.allclose(params["R"][0], params["R"][1])  # the fitted head pose moves the camera

    config = train_config(batch_size=2, validation_every=1000, checkpoint_every=1000)
    options = TrainOptions(dataset, tmp_path / "run", steps=1, files=ModelFiles(flame=flame, random_dinov2=True))
    result = Trainer(config, options).fit()
    assert np.isfinite(result["loss_last"]) and np.isfinite(result["val_psnr_last"])
    assert (tmp_path / "run" / "network.safetensors").is_file()
