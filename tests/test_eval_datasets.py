"""``omg-avatar eval`` on preprocessed datasets and across identities: dataset clips as
sequences (stored frames, masks and landmarks), the training-free and network methods on
them, cross-identity reenactment with motion scores only, and AED with a FLAME file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from core.cli import main
from core.config import config_to_dict, load_config
from core.dataset.layout import read_manifest
from core.evaluation.scoring import expression_distances, relative_pose_distance_deg
from core.evaluation.sequences import BLACK, dataset_sequences
from core.flame import load_flame_layer
from network_files import frontal_face_landmarks, write_flame_files, write_network_files
from test_preprocess import link_videos, preprocess

pytestmark = pytest.mark.samples

CONFIG = load_config("paper")
FRAMES = 4
VIDEOS = ("talking_d0.mp4", "talking_d18.mp4")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, samples_dir):
    root = tmp_path_factory.mktemp("eval_data")
    videos = link_videos(root / "videos", samples_dir, VIDEOS)
    preprocess(videos, root / "data", "--no-flame", frames=FRAMES)
    return root / "data"


@pytest.fixture(scope="module")
def models(tmp_path_factory, samples_dir):
    """The models folder (``$OMG_AVATAR_MODELS``) with the network's files; the synthetic
    FLAME fits real faces."""
    folder = tmp_path_factory.mktemp("models")
    files = write_network_files(folder, face_landmarks=frontal_face_landmarks(samples_dir, CONFIG))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMG_AVATAR_MODELS", str(folder))
        yield files


def run_eval(tmp_path, *args) -> dict:
    report = tmp_path / "scores.json"
    assert main(["eval", *map(str, args), "--json", str(report)]) == 0
    return json.loads(report.read_text())


def test_a_dataset_clip_is_its_stored_frames_landmarks_and_mask(dataset):
    manifest = read_manifest(dataset)
    (validation,) = dataset_sequences(manifest, "validation", 512)
    everything = dataset_sequences(manifest, "all", 512)
    assert len(everything) == 2 and validation.name in [s.name for s in everything]
    with validation:
        portrait = validation.portrait()
        reference, *driving = validation.frames()
        target = validation.target(driving[0])
    assert validation.tracked and portrait.crop.image.shape == (512, 512, 3) and portrait.mask.max() == 1.0
    assert np.array_equal(portrait.crop.image, reference.crop) and reference.landmarks.shape == (478, 3)
    assert [frame.index for frame in driving] == list(range(1, FRAMES))
    assert validation.background == BLACK and target[0, 0].tolist() == [0, 0, 0]  # stored on black
    assert not np.array_equal(driving[0].landmarks, reference.landmarks)
    small = dataset_sequences(manifest, "validation", 256)[0]
    with small:
        np.testing.assert_allclose(next(small.frames()).landmarks, reference.landmarks / 2)


def test_eval_scores_every_clip_of_a_dataset_split(dataset, tmp_path):
    report = run_eval(tmp_path, dataset, "--split", "all", "--max-frames", FRAMES)
    names = {f"data/{video.removesuffix('.mp4')}" for video in VIDEOS}
    assert set(report["videos"]) == names and report["mode"] == "self-reenactment"
    for scores in report["videos"].values():
        assert scores["frames"] == FRAMES - 1 and scores["method"] == "training-free"
        assert 15.0 < scores["psnr"] < 40.0 and 0.5 < scores["ssim"] < 1.0 and scores["akd"] < 10.0
    validation = run_eval(tmp_path, dataset)  # the default split
    assert len(validation["videos"]) == 1 and set(validation["videos"]) < names


def test_eval_of_a_network_checkpoint_on_a_dataset_scores_aed_with_its_flame_file(dataset, models, tmp_path):
    report = run_eval(tmp_path, dataset, "--method", "network", "--checkpoint", models.checkpoint,
                      "--flame", models.flame, "--dinov2", models.dinov2, "--no-refiner")  # fmt: skip
    (scores,) = report["videos"].values()
    assert scores["method"] == "network" and scores["frames"] == FRAMES - 1
    assert np.isfinite(scores["psnr"]) and np.isfinite(scores["ssim"])
    assert "aed" not in report["unavailable"]
    if scores["landmark_frames"]:  # an untrained network's render may show no face
        assert scores["aed"] >= 0.0


def test_cross_identity_scores_motion_only_and_names_what_is_unavailable(dataset, samples_dir, models, tmp_path):
    config = config_to_dict(CONFIG)  # its FLAME file is the one AED fits for the training-free method
    config["flame"]["model_file"] = str(models.flame)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    video = samples_dir / "videos" / "talking_d19.mp4"
    sheet = tmp_path / "sheet.png"
    report = run_eval(tmp_path, video, dataset, "--cross-identity", "--max-frames", FRAMES, "--contact-sheet", sheet,
                      "--config", config_file)  # fmt: skip
    (clip,) = [name for name in read_manifest(dataset).validation]
    expected = {f"talking_d19.mp4 driven by data/{clip}", f"data/{clip} driven by talking_d19.mp4"}
    assert report["mode"] == "cross-identity" and set(report["videos"]) == expected
    assert {"psnr", "ssim", "lpips", "akd", "csim"} <= set(report["unavailable"]) and "aed" not in report["unavailable"]
    for scores in report["videos"].values():
        assert scores["psnr"] is None and scores["akd"] is None and scores["frames"] == FRAMES - 1
        assert scores["landmark_frames"] == FRAMES - 1 and 0.0 <= scores["apd"] < 15.0
        assert scores["aed"] > 0.0  # two people's expressions differ
    assert sheet.is_file()


def test_cross_identity_needs_two_sequences(samples_dir, capsys):
    video = samples_dir / "videos" / "talking_d0.mp4"
    assert main(["eval", str(video), "--cross-identity"]) == 2
    assert "--cross-identity needs two or more sequences" in capsys.readouterr().err


def test_a_folder_that_is_not_a_dataset_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"omg-avatar: error: {tmp_path} is a folder but not a dataset: it has no manifest.json"


def test_relative_pose_distance_compares_motions_not_absolute_poses(samples_dir, dataset):
    sequence = dataset_sequences(read_manifest(dataset), "validation", 512)[0]
    with sequence:
        rest, moved = (frame.landmarks for frame in sequence.frames(max_frames=2))
    turned = _yawed(rest, 20.0)
    assert relative_pose_distance_deg(moved, rest, moved, rest) == 0.0
    # the same motion from another starting pose agrees; a missing face gives None
    assert relative_pose_distance_deg(_yawed(moved, 20.0), turned, moved, rest) < 1.0
    assert relative_pose_distance_deg(turned, rest, rest, rest) > 3.0
    assert relative_pose_distance_deg(None, rest, moved, rest) is None


def test_expression_distance_is_zero_for_the_same_face_and_grows_with_another_expression(samples_dir, dataset,
                                                                                         tmp_path):  # fmt: skip
    flame_file = write_flame_files(tmp_path, CONFIG, frontal_face_landmarks(samples_dir, CONFIG))
    layer = load_flame_layer(flame_file, CONFIG.flame, tmp_path / CONFIG.flame.landmark_embedding_file)
    sequence = dataset_sequences(read_manifest(dataset), "validation", 512)[0]
    with sequence:
        faces = [frame.landmarks for frame in sequence.frames()]
    same = expression_distances(faces, faces, layer, CONFIG, 512)
    assert same == [0.0] * len(faces)
    opened = [face.copy() for face in faces]
    for face in opened:
        face[LOWER_LIP_AND_CHIN, 1] += 25.0  # the mouth opens
    distances = expression_distances(faces, opened, layer, CONFIG, 512)
    assert all(d > 0.01 for d in distances)
    assert expression_distances([None, *faces[1:]], faces, layer, CONFIG, 512)[0] is None


#: MediaPipe points of the lower lip and chin.
LOWER_LIP_AND_CHIN = [14, 15, 16, 17, 18, 200, 199, 175, 152, 148, 176, 149, 150, 377, 400, 378, 379,
                      84, 85, 86, 87, 178, 88, 95, 317, 316, 315, 314, 402, 318, 324]  # fmt: skip


def _yawed(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    """``landmarks`` turned about the vertical axis through their centre."""
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    centre = landmarks.mean(axis=0)
    return (landmarks - centre) @ rotation.T + centre
