"""Network avatars: the ``network`` reconstruction method (the released network) on a sample
photo (a tiny random-weight checkpoint in our format, the synthetic FLAME as the release's bundle,
Meta-format DINOv2 weights), 32-channel features, the FLAME rig in the release's convention, the
refiner, the ``.omg`` round trip (and version-1 and version-2 files), ``reconstruct --method
network`` with its one-line missing-file error, driving, eval and the app's session."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import zipfile

import cv2
import numpy as np
import pytest
import torch

from core.avatar import DrivingState, available_methods, load_avatar, reconstruct, save_avatar
from core.avatar.animation import attach_flame
from core.avatar.avatar_file import AvatarFileError
from core.avatar.flame_rig import AttachedFlame, FlamePose
from core.avatar.network_method import NetworkFiles
from core.avatar.view import View, render_view
from core.cli import main
from core.config import load_config
from core.driving import DrivingPipeline, flame_fitting
from core.errors import ModelFileError
from core.geometry.release_camera import release_from_camera
from core.model.gaussian_generators import COLOR_CHANNELS as CHANNELS
from core.model.style_refiner import StyleRefiner
from core.render import render
from core.session import Session
from core.session.controls import ControlRig
from core.tracking.photo import prepare_portrait
from core.tracking.release_framing import HEAD_DISTANCE
from core.tracking.sources import VideoFileSource
from network_files import frontal_face_landmarks, write_network_files
from waiting import wait_for

CONFIG = load_config("tiny")  # the tracking and fitting settings; the checkpoint sizes the network


@pytest.fixture(scope="module")
def files(tmp_path_factory, samples_dir):
    """The network's files; the synthetic FLAME's landmark embedding is laid on a real face, so
    that FLAME fits of the samples' faces (the photo's, the videos') are sound."""
    landmarks = frontal_face_landmarks(samples_dir, CONFIG)
    return write_network_files(tmp_path_factory.mktemp("models"), landmarks)


@pytest.fixture(scope="module")
def models_env(files):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMG_AVATAR_MODELS", str(files.models))
        yield files


@pytest.fixture(scope="module")
def avatar(models_env, samples_dir):
    portrait = prepare_portrait(samples_dir / "photos" / "einstein.jpg", CONFIG.tracking)
    chosen = NetworkFiles(models_env.checkpoint, models_env.flame, models_env.dinov2)
    return reconstruct(portrait, "network", CONFIG, files=chosen)


@pytest.fixture(scope="module")
def saved(avatar, tmp_path_factory):
    return save_avatar(avatar, tmp_path_factory.mktemp("omg") / "network.omg")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def flame_state(jaw_open: float = 0.3) -> DrivingState:
    pose = FlamePose(np.full(100, 0.5), np.array([jaw_open, 0, 0]), np.zeros(6), np.zeros(0))
    return DrivingState(np.zeros((478, 3)), np.eye(3), np.zeros(3), flame=pose)


# --------------------------------------------------------------------------- the method
def test_network_is_a_listed_method():
    assert available_methods() == ["training-free", "network"]


@pytest.mark.samples
def test_network_avatar_has_32_channels_a_refiner_a_flame_rig_and_one_level_per_lod(avatar, files):
    assert avatar.method == "network" and avatar.num_channels == CHANNELS
    assert isinstance(avatar.refiner, StyleRefiner) and avatar.flame is not None
    assert avatar.num_lods == files.config.subdivision + 1 and avatar.first_level == 0
    assert avatar.scheme == "midpoint" and avatar.source_camera.width == files.config.refiner_size
    assert avatar.provenance["network"]["checkpoint"] == files.checkpoint.name
    transform = release_from_camera(avatar.source_camera)  # the release's framing: FLAME's origin ahead
    assert np.abs(transform[:2, 3]).max() < 0.1 and abs(transform[2, 3] - HEAD_DISTANCE) < 0.3
    assert len(avatar.rig.vertices) == files.num_flame_vertices
    for lod in range(avatar.num_lods):
        assert avatar.num_gaussians(lod) == avatar.levels.num_vertices[lod] + len(avatar.shoulders)
        assert avatar.gaussians(lod).features.shape == (avatar.num_gaussians(lod), CHANNELS)
    assert avatar.levels.num_vertices[1] > 3 * files.num_flame_vertices  # subdivided


@pytest.mark.samples
def test_flame_driving_moves_the_head_and_landmark_only_driving_keeps_the_source_expression(avatar):
    neutral = avatar.head_means(1)
    assert not torch.allclose(avatar.head_means(1, flame_state()), neutral, atol=1e-4)
    landmark_only = DrivingState(np.random.default_rng(0).normal(size=(478, 3)), np.eye(3), np.zeros(3))
    assert torch.allclose(avatar.head_means(1, landmark_only), neutral, atol=1e-5)
    source = avatar.flame.source
    at_source = DrivingState(np.zeros((478, 3)), np.eye(3), np.zeros(3), flame=source)
    assert torch.allclose(avatar.head_means(1, at_source), neutral, atol=1e-4)


@pytest.mark.samples
def test_manual_jaw_control_turns_flames_jaw_and_smile_leaves_a_network_avatar_alone(avatar):
    controls = ControlRig(avatar.rig.landmarks, avatar.flame.source)
    rest = avatar.head_means(0, controls.state({}))
    torch.testing.assert_close(rest, avatar.head_means(0), atol=1e-4, rtol=0)  # no control: the source
    motion = avatar.head_means(0, controls.state({"jaw_open": 1.0})) - rest
    distance = motion.norm(dim=1)
    assert distance.max() > 1e-2
    assert motion[distance > 0.5 * distance.max(), 1].mean() < 0  # what moves most goes down: the chin
    torch.testing.assert_close(avatar.head_means(0, controls.state({"smile": 1.0})), rest, atol=1e-5, rtol=0)


@pytest.mark.samples
def test_features_with_32_channels_render_with_the_cpu_backend_like_the_reference(avatar):
    gaussians, camera = avatar.gaussians(0), avatar.camera()
    cpu = render(gaussians, camera, backend="cpu").features
    reference = render(gaussians, camera, backend="reference").features
    assert cpu.shape == (camera.height, camera.width, CHANNELS)
    assert cpu[..., 3:].abs().sum() > 0
    assert torch.allclose(cpu, reference, atol=2e-3)
    rgb = avatar.rgb(cpu)
    assert rgb.shape == (camera.height, camera.width, 3) and not torch.allclose(rgb, cpu[..., :3])
    assert torch.equal(avatar.rgb(cpu, use_refiner=False), cpu[..., :3])


# --------------------------------------------------------------------------- the file
@pytest.mark.samples
def test_network_avatar_round_trip_keeps_features_refiner_and_flame_rig(avatar, saved, files):
    loaded = load_avatar(saved)
    assert loaded.num_channels == CHANNELS and loaded.flame.model is None
    for lod in range(avatar.num_lods):
        original, restored = avatar.gaussians(lod), loaded.gaussians(lod)
        for name in ("means", "quats", "scales", "opacities", "features"):
            assert torch.equal(getattr(original, name), getattr(restored, name)), name
    features = torch.rand(64, 64, CHANNELS, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.rgb(features), avatar.rgb(features))
    np.testing.assert_array_equal(loaded.flame.shape, avatar.flame.shape)
    np.testing.assert_array_equal(loaded.flame.offsets, avatar.flame.offsets)
    # no FLAME model in the file: posing an expression needs the user's FLAME file
    with pytest.raises(ModelFileError, match="FLAME"):
        loaded.gaussians(1, flame_state())
    with zipfile.ZipFile(saved) as archive:
        flame_members = {name for name in archive.namelist() if name.startswith("flame.")}
    assert flame_members == {f"flame.{name}.npy" for name in ("shape", "offsets", "expression", "jaw", "eyes", "eyelids")}
    attached = loaded.with_flame(AttachedFlame.load(files.flame, CONFIG))
    assert torch.allclose(attached.head_means(1, flame_state()), avatar.head_means(1, flame_state()), atol=1e-5)


@pytest.mark.samples
def test_version_1_files_still_load_as_rgb_avatars(avatar, saved, tmp_path):
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if not name.startswith(("flame.", "refiner."))}
    header = json.loads(arrays["header"].tobytes())
    header = {key: value for key, value in header.items() if key not in ("flame", "refiner")} | {"version": 1}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for name in [name for name in arrays if name.endswith(".features")]:  # v1 held RGB in [0, 1]
        arrays[name.replace(".features", ".colours")] = arrays.pop(name)[:, :3].clip(0, 1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    old = tmp_path / "v1.omg"
    old.write_bytes(buffer.getvalue())
    loaded = load_avatar(old)
    assert loaded.num_channels == 3 and loaded.refiner is None and loaded.flame is None
    assert torch.equal(loaded.gaussians(2).features, avatar.gaussians(2).features[:, :3].clamp(0, 1))
    assert torch.equal(loaded.gaussians(2).means, avatar.gaussians(2).means)


@pytest.mark.samples
def test_version_2_network_avatars_of_the_earlier_network_are_refused_in_one_line(saved, tmp_path):
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays["header"].tobytes()) | {"version": 2}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    old = tmp_path / "v2.omg"
    old.write_bytes(buffer.getvalue())
    with pytest.raises(AvatarFileError, match="earlier network .* reconstruct it again") as error:
        load_avatar(old)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------- the command
@pytest.mark.samples
def test_reconstruct_command_writes_a_network_avatar(models_env, samples_dir, tmp_path):
    output = tmp_path / "einstein.omg"
    status, out, err = run_cli([
        "reconstruct", str(samples_dir / "photos" / "einstein.jpg"), "-o", str(output), "--method", "network",
        "--checkpoint", str(models_env.checkpoint), "--flame", str(models_env.flame),
        "--config", "tiny",
    ])  # fmt: skip
    assert status == 0, err
    loaded = load_avatar(output)
    assert loaded.method == "network" and loaded.num_channels == CHANNELS and loaded.refiner is not None
    for lod in range(loaded.num_lods):
        assert f"LOD {lod} Gaussians:  {loaded.num_gaussians(lod)} ({loaded.levels.num_vertices[lod]} head" in out
    assert "100% done" in err


@pytest.mark.parametrize("missing", [("checkpoint",), ("flame",), ("checkpoint", "flame")])
def test_missing_network_files_are_named_in_one_line_with_exit_status_2(files, tmp_path, monkeypatch, missing):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(files.models))
    given = {"checkpoint": files.checkpoint, "flame": files.flame}
    given.update({name: tmp_path / f"absent_{name}.bin" for name in missing})
    options = [item for name, path in given.items() for item in (f"--{name}", str(path))]
    status, out, err = run_cli(["reconstruct", str(tmp_path / "no_photo.jpg"), "-o", str(tmp_path / "a.omg"),
                                "--method", "network", *options])  # fmt: skip
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("omg-avatar: error: ")
    for name, path in given.items():
        assert (str(path) in err) == (name in missing)
    assert f"{len(missing)} missing file(s)" in err
    assert not (tmp_path / "a.omg").exists()


def test_a_flame_file_without_its_bundle_neighbours_names_them(files, tmp_path):
    lonely = tmp_path / "FLAME_with_eye.pt"
    lonely.write_bytes(files.flame.read_bytes())
    status, out, err = run_cli(["reconstruct", "photo.jpg", "-o", str(tmp_path / "a.omg"), "--method", "network",
                                "--checkpoint", str(files.checkpoint), "--flame", str(lonely)])  # fmt: skip
    assert status == 2 and len(err.strip().splitlines()) == 1 and "2 missing file(s)" in err
    assert str(tmp_path / "head_template_mesh.obj") in err and str(tmp_path / "FLAME_masks.pkl") in err


@pytest.mark.samples
def test_a_checkpoint_without_dinov2_needs_the_dinov2_file_and_says_where(files, samples_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))  # no DINOv2 file in its default place
    status, out, err = run_cli([
        "reconstruct", str(samples_dir / "photos" / "einstein.jpg"), "-o", str(tmp_path / "a.omg"), "--method",
        "network", "--checkpoint", str(files.checkpoint), "--flame", str(files.flame),
    ])  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("omg-avatar: error: ")]
    assert status == 2 and errors == [err.strip().splitlines()[-1]]
    dinov2 = tmp_path / "dinov2" / "dinov2_vitb14_pretrain.pth"
    assert "no DINOv2 weights" in errors[0] and f"put it at {dinov2}" in errors[0]
    assert not (tmp_path / "a.omg").exists()


def test_network_file_options_are_refused_for_the_training_free_method(files, tmp_path):
    argv = ["reconstruct", "photo.jpg", "-o", str(tmp_path / "a.omg"), "--checkpoint", str(files.checkpoint)]
    status, _, err = run_cli(argv)
    assert status == 2 and "--method network" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- driving
DRIVING_FRAMES = CONFIG.tracking.fitter.calibration_frames + 3


@pytest.fixture(scope="module")
def avatar_file(avatar, tmp_path_factory):
    return save_avatar(avatar, tmp_path_factory.mktemp("drive") / "network.omg")


@pytest.mark.samples
def test_a_flame_fit_per_frame_drives_the_expression_once_the_shape_is_calibrated(saved, files, samples_dir):
    loaded_flame = attach_flame(load_avatar(saved), files.flame, CONFIG)
    assert flame_fitting(loaded_flame, CONFIG) is not None and loaded_flame.flame.model is not None
    with VideoFileSource(samples_dir / "videos" / "talking_d0.mp4") as video, DrivingPipeline(CONFIG, loaded_flame) as pipeline:
        states = [pipeline.step(frame).state for frame, _ in zip(video, range(DRIVING_FRAMES))]
    calibration = CONFIG.tracking.fitter.calibration_frames
    assert all(state.flame is None for state in states[: calibration - 1])
    assert all(state.flame is not None for state in states[calibration - 1:])
    assert states[-1].flame.expression.shape == (CONFIG.tracking.fitter.n_expression,)
    assert not np.array_equal(states[-1].flame.expression, states[-2].flame.expression)  # fitted per frame
    without = dataclasses.replace(states[-1], flame=None)
    assert not torch.allclose(loaded_flame.head_means(0, states[-1]), loaded_flame.head_means(0, without), atol=1e-4)


@pytest.mark.samples
def test_avatars_without_a_flame_model_are_driven_by_landmarks_only(saved):
    loaded = load_avatar(saved)
    assert attach_flame(loaded, None, CONFIG) is loaded
    assert flame_fitting(loaded, CONFIG) is None


@pytest.mark.samples
@pytest.mark.parametrize("refiner", [True, False])
def test_drive_renders_a_network_avatar_with_and_without_its_refiner(
    models_env, avatar_file, samples_dir, tmp_path, refiner
):
    output = tmp_path / "driven.mp4"
    status, out, err = run_cli([
        "drive", str(avatar_file), "--video", str(samples_dir / "videos" / "talking_d0.mp4"), "-o", str(output),
        "--max-frames", str(DRIVING_FRAMES), "--lod", "0", "--flame", str(models_env.flame), "--config", "tiny",
        *([] if refiner else ["--no-refiner"]),
    ])  # fmt: skip
    assert status == 0, err
    assert f"frames:           {DRIVING_FRAMES} ({DRIVING_FRAMES} with a face)" in out
    assert f"expressions FLAME fit per frame, refiner {'on' if refiner else 'off (coarse RGB)'}" in out
    capture = cv2.VideoCapture(str(output))
    count, first = 0, None
    while (ok := capture.read())[0]:
        count += 1
        first = ok[1] if first is None else first
    capture.release()
    assert count == DRIVING_FRAMES and first.shape[:2] == (models_env.config.refiner_size,) * 2


@pytest.mark.samples
def test_eval_reconstructs_and_scores_a_network_avatar(models_env, samples_dir, tmp_path):
    report = tmp_path / "scores.json"
    status, _, err = run_cli([
        "eval", str(samples_dir / "videos" / "talking_d0.mp4"), "--max-frames", "3", "--lod", "0", "--config", "tiny",
        "--method", "network", "--checkpoint", str(models_env.checkpoint), "--flame", str(models_env.flame),
        "--no-refiner", "--json", str(report),
    ])  # fmt: skip
    assert status == 0, err
    video = json.loads(report.read_text())["videos"]["talking_d0.mp4"]
    assert video["method"] == "network" and video["frames"] == 2


# --------------------------------------------------------------------------- the app's session
@pytest.mark.samples
def test_the_session_builds_a_network_avatar_and_toggles_its_refiner(models_env, samples_dir):
    session = Session(CONFIG)
    try:
        assert "network" in session.methods()
        for kind in ("checkpoint", "flame", "dinov2"):
            session.set_network_file(kind, getattr(models_env, kind))
        job = session.reconstruct(samples_dir / "photos" / "einstein.jpg", "network")
        assert job.wait(120) and job.error is None, job.error
        session.set_avatar(job.avatar, job.name)
        assert session.has_refiner and session.avatar.flame.model is not None
        assert session._pipeline(1).fits_flame  # driven frames get FLAME expressions
        camera = session.avatar.camera()
        images = {
            (mode, refiner): render_view(session.avatar, View(camera, 0, mode, use_refiner=refiner), None, "cpu")
            for mode in ("final", "coarse") for refiner in (True, False)
        }  # fmt: skip
        assert images[("final", True)].shape == (camera.height, camera.width, 3)
        assert not np.allclose(images[("final", True)], images[("final", False)], atol=1e-3)
        np.testing.assert_array_equal(images[("final", False)], images[("coarse", False)])
        np.testing.assert_array_equal(images[("coarse", True)], images[("coarse", False)])
        session.set_use_refiner(False)
        serial = session.request_render([View(camera, 0)])
        frame = wait_for(session.rendered, 30.0, "the render", step=lambda: session.wait(0.1))
        assert frame.request.serial == serial and frame.error is None and not frame.request.views[0].use_refiner
        np.testing.assert_array_equal(frame.images[0], images[("final", False)])
    finally:
        session.close()


@pytest.mark.samples
def test_bench_avatar_times_every_level_with_and_without_the_refiner(models_env, saved, tmp_path):
    report = tmp_path / "bench.json"
    status, out, err = run_cli(["bench", "avatar", str(saved), "--repeats", "1", "--renderer", "cpu",
                                "--flame", str(models_env.flame), "--json", str(report)])  # fmt: skip
    assert status == 0, err
    rows = json.loads(report.read_text())["rows"]
    assert [(row["lod"], row["refiner"]) for row in rows] == [(lod, on) for lod in range(3) for on in (False, True)]
    for row in rows:
        parts = row["animate_ms"] + row["render_ms"] + row["refine_ms"]
        assert row["animate_ms"] > 0 and row["render_ms"] > 0 and abs(row["frame_ms"] - parts) < 1e-6
        assert (row["refine_ms"] > 0) == row["refiner"]
    assert "FLAME re-posed" in out


# --------------------------------------------------------------------------- our checkpoint format
def test_info_reports_our_checkpoint_format_as_fitting_the_network(files, tmp_path):
    report = tmp_path / "info.json"
    status, out, err = run_cli(["info", "--checkpoint", str(files.checkpoint), "--flame", str(files.flame),
                                "--json", str(report)])  # fmt: skip
    assert status == 0, err
    info = json.loads(report.read_text())
    assert info["missing"] == [] and info["unexpected"] == [] and info["mismatched"] == []
    assert info["sizes"]["dim"] == files.config.dim and not info["dinov2_in_checkpoint"]
    assert "network checkpoint" in out


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"dim": 10**6}, r"size dim is 1000000, expected an integer in 8\.\.1024"),
        ({"image_size": 60}, r"do not make a network"),
        ({"refiner_size": True}, r"size refiner_size is True"),
        ({"unknown": 1}, r"must give exactly"),
    ],
)
def test_our_checkpoints_sizes_are_checked_before_building_anything(files, tmp_path, sizes, message):
    import safetensors
    import safetensors.torch

    with safetensors.safe_open(files.checkpoint, framework="pt") as file:
        metadata = file.metadata()
        tensors = {"head_base": file.get_tensor("head_base")}
    stored = json.loads(metadata["sizes"]) | sizes
    edited = tmp_path / "edited.safetensors"
    safetensors.torch.save_file(tensors, edited, metadata | {"sizes": json.dumps(stored)})
    status, out, err = run_cli(["info", "--checkpoint", str(edited)])
    assert status == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err)


def test_a_checkpoint_of_the_earlier_network_is_refused_with_a_reason(tmp_path):
    import safetensors.torch

    old = tmp_path / "old.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(1)}, old, {"format": "omg-avatar-network", "version": "1"})
    status, out, err = run_cli(["info", "--checkpoint", str(old)])
    assert status == 2 and "earlier network" in err and len(err.strip().splitlines()) == 1
