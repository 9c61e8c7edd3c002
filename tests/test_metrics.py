"""The evaluation metrics against values known in closed form."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from core.errors import ModelFileError
from core.evaluation.metrics import (
    PSNR_CAP_DB,
    keypoint_distance,
    load_lpips,
    pose_distance_deg,
    psnr,
    ssim,
)
from core.paths import LPIPS_FILE
from core.tracking.head_pose import FRONTAL
from lpips_stand_in import write_stand_in_lpips


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """[64, 64, 3] smooth colour image in [0.2, 0.8] (room for noise without clipping)."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    return np.stack([0.2 + 0.6 * x, 0.2 + 0.6 * y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=2)


def test_identical_images_have_the_capped_psnr_and_unit_ssim(image):
    assert psnr(image, image) == PSNR_CAP_DB
    assert ssim(image, image) == pytest.approx(1.0)


def test_psnr_of_a_known_error_level(image):
    # A uniform error of 0.1 is an MSE of 0.01: 20 dB. Random +-0.05 signs: MSE 0.0025, 26.02 dB.
    assert psnr(image + 0.1, image) == pytest.approx(20.0)
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=image.shape)
    assert psnr(image + 0.05 * signs, image) == pytest.approx(10 * math.log10(1 / 0.0025))


def test_ssim_falls_with_noise_and_ignores_nothing(image):
    noise = np.random.default_rng(1).normal(0.0, 0.05, image.shape)
    slightly, badly = ssim(image + 0.2 * noise, image), ssim(image + 2 * noise, image)
    assert 0.0 < badly < slightly < 1.0
    assert ssim(image, image + 2 * noise) == pytest.approx(badly)  # symmetric


def test_keypoint_distance_of_shifted_landmarks_is_the_shift():
    landmarks = np.random.default_rng(2).uniform(0, 512, size=(478, 3))
    shifted = landmarks + np.array([3.0, 4.0, 100.0])  # depth is not compared
    assert keypoint_distance(shifted, landmarks) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        keypoint_distance(landmarks[:468], landmarks)


def _head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """FRONTAL @ Ry(yaw) @ Rx(pitch) @ Rz(roll), the order HeadPose.yaw_pitch_roll_deg inverts."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return FRONTAL @ ry @ rx @ rz


def test_pose_distance_is_the_mean_absolute_angle_difference():
    assert pose_distance_deg(_head_rotation(10, -5, 2), _head_rotation(10, -5, 2)) == pytest.approx(0.0, abs=1e-9)
    assert pose_distance_deg(_head_rotation(16, -5, 2), _head_rotation(10, -2, 2)) == pytest.approx(3.0)
    # Differences wrap: 179 and -179 degrees of roll are 2 degrees apart.
    assert pose_distance_deg(_head_rotation(0, 0, 179), _head_rotation(0, 0, -179)) == pytest.approx(2 / 3)


def test_lpips_is_unavailable_without_a_weights_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    assert load_lpips() is None


def test_lpips_reads_the_default_weights_file_of_the_models_folder(tmp_path, monkeypatch, image):
    weights = write_stand_in_lpips(tmp_path / "lpips_alex.safetensors")
    (tmp_path / "lpips").mkdir()
    weights = weights.rename(tmp_path / LPIPS_FILE)
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    lpips = load_lpips()
    assert lpips is not None and lpips.path == weights
    assert lpips(image, image) == 0.0
    assert 0.0 < lpips(image + 0.05, image) < lpips(image + 0.1, image)


def test_a_missing_lpips_file_is_a_model_file_error(tmp_path, caplog):
    with pytest.raises(ModelFileError, match="LPIPS weights not found"):
        load_lpips(tmp_path / "absent.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="corrupt.safetensors: not a readable weights file"):
        load_lpips(corrupt)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]  # no logged traceback
