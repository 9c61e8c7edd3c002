"""Release driver folders as driving inputs: the head-pose algebra, ``drive --driver`` (head
motion and ``--driver-camera``), hostile and missing driver files, and ``eval`` on a driver
folder with its ``img_lmdb/`` of cropped frames."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import cv2
import lmdb
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.transform import Rotation

import core.driving.pipeline as pipeline_module
from core.avatar import DrivingState, load_avatar
from core.avatar.avatar import HeadRig
from core.avatar.view import View, render_view
from core.cli import main
from core.driving import release_images
from core.driving.release_driver import FIELDS, DriverFrame, driver_fps, load_release_driver
from core.driving.release_images import DriverImages
from core.driving.release_states import anchored_camera, release_camera, release_state, rigid_head_motion
from core.errors import InputImageError
from core.geometry.camera import Camera
from core.geometry.release_camera import release_from_camera
from core.media import rgb8
from core.tracking.face_mesh import PortraitSegmenter

SIZE = 512
FRONTAL = np.array([[-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 10.6]], np.float32)


@pytest.fixture(scope="module")
def avatar_file(einstein_avatar_file) -> Path:
    return einstein_avatar_file


@pytest.fixture(scope="module")
def avatar(avatar_file):
    return load_avatar(avatar_file)


def _record(transform: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    record = {name: (0.1 * rng.standard_normal(shape)).astype(np.float32) for name, shape in FIELDS.items()}
    record["posecode"][:3] = 0.0  # the tracker's global rotation
    record["transform_matrix"] = np.asarray(transform, np.float32)
    return record


def _frame(transform: np.ndarray) -> DriverFrame:
    """A driver frame with ``transform`` as its camera."""
    return DriverFrame("clip_0", 0, **{name: _record(transform)[name] for name in FIELDS})


def _write_driver(folder: Path, transforms: list[np.ndarray], name: str = "smoothed.pkl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frames = {f"clip_{index}": _record(transform, index) for index, transform in enumerate(transforms)}
    with open(folder / name, "wb") as file:
        pickle.dump(frames, file, protocol=4)
    return folder


def _shifted(camera: Camera, dx: float) -> Camera:
    """``camera`` moved ``dx`` along its own -x: what it sees moves right by ``fx dx / z`` pixels."""
    return Camera(camera.K, camera.R, camera.t + np.array([dx, 0.0, 0.0]), camera.width, camera.height)


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _centroid_x(image: np.ndarray, rows: slice) -> float:
    """Mean column of the non-black pixels of ``rows``."""
    covered = image[rows].max(axis=2) > 30
    return float(np.nonzero(covered)[1].mean())


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omg-avatar: error: "), captured.err
    return lines[0]


# ---------------------------------------------------------------------------------- the algebra
def test_head_motion_shows_the_source_camera_what_the_driver_camera_sees():
    K = Camera.intrinsics(SIZE, SIZE, 12.0)
    source = Camera(K, Rotation.from_euler("xyz", [170, 5, -3], degrees=True).as_matrix(), np.array([0.1, -0.2, 9.5]),
                    SIZE, SIZE)  # fmt: skip
    driver = Camera(K, Rotation.from_euler("xyz", [160, 25, 8], degrees=True).as_matrix(), np.array([0.4, 0.1, 10.4]),
                    SIZE, SIZE)  # fmt: skip
    vertices = np.random.default_rng(1).uniform(-1.0, 1.0, (20, 3)).astype(np.float32)
    pivot = np.array([0.0, -1.5, -0.3])
    rig = HeadRig(vertices, np.array([[0, 1, 2]]), sp.csr_matrix((20, 1)), np.ones(20), np.zeros((1, 3)), pivot,
                  np.zeros(3))  # fmt: skip
    rotation, translation = rigid_head_motion(source, driver, pivot)
    moved = rig.posed(DrivingState(np.zeros((1, 3)), rotation, translation))
    seen, _ = source.project(moved.astype(np.float64))
    expected, _ = driver.project(vertices.astype(np.float64))
    assert np.abs(expected - seen).max() < 2e-3  # pixels (float32 posing)
    assert np.abs(expected - source.project(vertices.astype(np.float64))[0]).max() > 50  # the head did move
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_release_state_moves_a_rigid_avatar_vertex_where_the_frame_camera_sees_it(avatar):
    driver = _shifted(avatar.camera(yaw_deg=20.0, pitch_deg=-8.0), 0.2)
    frame = _frame(release_from_camera(driver))
    state = release_state(frame, avatar, expressions=True)
    rigid = np.flatnonzero(avatar.rig.rigidity == 1.0)
    far = rigid[np.argmax(np.linalg.norm(avatar.rig.vertices[rigid] - avatar.rig.pivot, axis=1))]
    moved = avatar.rig.posed(state)[far].astype(np.float64)
    seen = avatar.source_camera.project(moved)[0]
    expected = release_camera(frame, avatar.source_camera.width).project(avatar.rig.vertices[far].astype(np.float64))[0]
    assert np.abs(seen - expected).max() < 2e-2
    assert state.flame is None and not state.landmark_offsets.any()  # a training-free avatar: no FLAME rig


def test_release_state_poses_the_flame_codes_of_an_avatar_with_a_rig():
    camera = Camera(Camera.intrinsics(SIZE, SIZE, 12.0), np.diag([-1.0, -1.0, 1.0]) @ FRONTAL[:, :3].T,
                    np.diag([-1.0, -1.0, 1.0]) @ FRONTAL[:, 3], SIZE, SIZE)  # fmt: skip
    rig = SimpleNamespace(landmarks=np.zeros((5, 3)), pivot=np.zeros(3))
    frame = _frame(FRONTAL)
    with_rig = release_state(frame, SimpleNamespace(source_camera=camera, rig=rig, flame=object()), expressions=True)
    np.testing.assert_array_equal(with_rig.flame.expression, frame.expcode)
    np.testing.assert_array_equal(with_rig.flame.jaw, frame.posecode[3:])
    np.testing.assert_array_equal(with_rig.flame.eyes, frame.eyecode)
    assert with_rig.flame.eyelids.shape == (0,)
    np.testing.assert_allclose(with_rig.rotation, np.eye(3), atol=1e-6)  # the source camera is the frame's
    np.testing.assert_allclose(with_rig.translation, 0.0, atol=1e-5)
    no_file = release_state(frame, SimpleNamespace(source_camera=camera, rig=rig, flame=object()), expressions=False)
    assert no_file.flame is None


def test_anchored_cameras_start_at_the_source_view_and_move_as_the_driver_cameras():
    K = Camera.intrinsics(SIZE, SIZE, 12.0)
    first, later = (Camera(K, Rotation.from_euler("y", angle, degrees=True).as_matrix() @ np.diag([1.0, -1.0, -1.0]),
                           np.array([0.0, 0.0, 10.0]) + shift, SIZE, SIZE)
                    for angle, shift in ((0.0, 0.0), (15.0, np.array([0.2, 0.0, 0.3]))))  # fmt: skip
    source = Camera(K, Rotation.from_euler("x", 185, degrees=True).as_matrix(), np.array([0.3, 0.5, 9.0]), SIZE, SIZE)
    anchored = anchored_camera(first, first, source)
    np.testing.assert_allclose(anchored.R, source.R, atol=1e-12)
    np.testing.assert_allclose(anchored.t, source.t, atol=1e-12)
    # later frames see the avatar's head space as the driver's cameras see it carried onto the
    # driver's head space (the map that takes the source view to the first frame's camera)
    moved = anchored_camera(later, first, source)
    points = np.random.default_rng(2).uniform(-1.0, 1.0, (10, 3))
    carried = (points @ source.R.T + source.t - first.t) @ first.R
    np.testing.assert_allclose(moved.world_to_camera(points), later.world_to_camera(carried), atol=1e-9)
    # an avatar whose source view is the first frame's camera renders through the frames' own cameras
    same = anchored_camera(later, first, first)
    np.testing.assert_allclose(np.hstack([same.R, same.t[:, None]]), np.hstack([later.R, later.t[:, None]]), atol=1e-12)


# ---------------------------------------------------------------------------------- drive
@pytest.fixture(scope="module")
def turning_driver(avatar, tmp_path_factory) -> Path:
    """Three frames: the avatar's own view, then the camera turning and moving (the head seen
    turning to its side and shifting right)."""
    cameras = [_shifted(avatar.camera(yaw_deg=yaw), dx) for yaw, dx in ((0.0, 0.0), (12.0, 0.25), (24.0, 0.5))]
    return _write_driver(tmp_path_factory.mktemp("driver") / "turning", [release_from_camera(c) for c in cameras])


def test_drive_with_a_driver_folder_turns_the_head_before_a_still_camera(avatar_file, turning_driver, tmp_path, capsys,
                                                                         monkeypatch):  # fmt: skip
    def no_tracker(*args, **kwargs):
        raise AssertionError("a driver folder needs no tracker")

    monkeypatch.setattr(pipeline_module.Tracker, "from_config", no_tracker)
    output = tmp_path / "driven.mp4"
    code = main(["drive", str(avatar_file), "--driver", str(turning_driver), "-o", str(output), "--lod", "0",
                 "--renderer", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    frames = _video_frames(output)
    assert len(frames) == 3 and frames[0].shape == (SIZE, SIZE, 3)
    assert cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FPS) == 25.0  # no tracked.mp4 gives the rate
    head, shoulders = slice(0, SIZE * 2 // 5), slice(SIZE - 20, SIZE)
    head_shift = _centroid_x(frames[2], head) - _centroid_x(frames[0], head)
    shoulder_shift = _centroid_x(frames[2], shoulders) - _centroid_x(frames[0], shoulders)
    assert head_shift > 40  # 0.5 units at about 9.5: 160 px for the rigid head, less for the fading neck
    assert shoulder_shift > 40  # the driver moved sideways: the bust goes along (clipped at the border)
    assert "input:            turning/smoothed.pkl (all 3 driver frames driven)" in out
    assert "frames:           3 (3 with a face)" in out
    assert "head pose:        the driver's, turns the head" in out


def test_a_training_free_avatar_takes_the_drivers_motion_since_its_first_frame(avatar, avatar_file, tmp_path,
                                                                              capsys):  # fmt: skip
    """Its head space is not FLAME's, so the driver's absolute pose means nothing to it: the first
    frame shows the avatar's own pose however the driver's head was turned, later frames move."""
    cameras = [_shifted(avatar.camera(yaw_deg=yaw), dx) for yaw, dx in ((30.0, 0.4), (42.0, 0.65))]
    driver = _write_driver(tmp_path / "turned", [release_from_camera(c) for c in cameras])
    output = tmp_path / "relative.mp4"
    assert main(["drive", str(avatar_file), "--driver", str(driver), "-o", str(output), "--lod", "0",
                 "--renderer", "cpu"]) == 0  # fmt: skip
    assert "turns the head since its first frame" in capsys.readouterr().out
    frames = _video_frames(output)
    still = rgb8(render_view(avatar, View(avatar.camera(), 0), None, "cpu"))
    assert np.abs(frames[0].astype(float) - still).mean() < 3  # MP4 loss only
    head = slice(0, SIZE * 2 // 5)
    assert _centroid_x(frames[1], head) - _centroid_x(frames[0], head) > 30


def test_drive_with_driver_cameras_renders_through_each_frames_camera(avatar, avatar_file, turning_driver, tmp_path,
                                                                      capsys):  # fmt: skip
    output = tmp_path / "release_framing.mp4"
    code = main(["drive", str(avatar_file), "--driver", str(turning_driver), "--driver-camera", "-o", str(output),
                 "--lod", "0", "--renderer", "cpu", "--max-frames", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "--max-frames 2 reached" in out and "each frame's own camera" in out
    frames = _video_frames(output)
    assert len(frames) == 2
    shoulders = slice(SIZE - 20, SIZE)
    assert _centroid_x(frames[1], shoulders) - _centroid_x(frames[0], shoulders) > 20  # the bust moves too
    frame = load_release_driver(turning_driver).frames[1]
    view = View(release_camera(frame, SIZE), 0)
    expected = rgb8(render_view(avatar, view, release_state(frame, avatar, True, head_motion=False), "cpu"))
    still = rgb8(render_view(avatar, View(avatar.camera(), 0), None, "cpu"))
    assert np.abs(frames[1].astype(float) - expected).mean() < 3  # MP4 loss only
    assert np.abs(still.astype(float) - expected).mean() > 10  # the frame's camera is not the avatar's


@pytest.mark.parametrize("preview_fps, expected", [(24.0, 24.0), (60.0, 30.0)])
def test_the_frame_rate_is_the_driving_videos_from_the_preview(tmp_path, preview_fps, expected):
    writer = cv2.VideoWriter(str(tmp_path / "tracked.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), preview_fps, (64, 32))
    for _ in range(2):
        writer.write(np.zeros((32, 64, 3), np.uint8))
    writer.release()
    assert driver_fps(tmp_path) == expected  # above 50 FPS the tracker kept every other frame
    (tmp_path / "tracked.mp4").write_bytes(b"not a video")
    assert driver_fps(tmp_path) == 25.0


class _MarkerMaker:
    """Unpickling this would create a file (what a hostile pickle does)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_hostile_driver_pickle_is_refused_before_it_runs(avatar_file, tmp_path, capsys):
    folder = tmp_path / "hostile"
    folder.mkdir()
    marker = tmp_path / "marker"
    frames = {"clip_0": _record(FRONTAL)}
    frames["clip_0"]["expcode"] = _MarkerMaker(marker)
    (folder / "smoothed.pkl").write_bytes(pickle.dumps(frames, protocol=4))
    output = tmp_path / "out.mp4"
    code = main(["drive", str(avatar_file), "--driver", str(folder), "-o", str(output)])
    line = _one_error_line(capsys)
    assert code == 2 and "smoothed.pkl" in line and "refused" in line
    assert not marker.exists() and not output.exists()
    assert os.listdir(tmp_path) == ["hostile"]  # no partial MP4 either


@pytest.mark.parametrize("options, expected", [
    ([], "neither smoothed.pkl nor optim.pkl"),
    (["--driver-camera", "--yaw", "10"], "--yaw and --pitch do not apply"),
], ids=["no-driver-file", "camera-and-yaw"])  # fmt: skip
def test_driver_folder_errors_are_one_line(avatar_file, tmp_path, capsys, options, expected):
    code = main(["drive", str(avatar_file), "--driver", str(tmp_path), *options])
    assert code == 2 and expected in _one_error_line(capsys)


def test_driver_camera_needs_a_driver_folder(avatar_file, samples_dir, capsys):
    code = main(["drive", str(avatar_file), "--video", str(samples_dir / "videos" / "talking_d0.mp4"),
                 "--driver-camera"])  # fmt: skip
    assert code == 2 and "--driver-camera needs --driver" in _one_error_line(capsys)


# ---------------------------------------------------------------------------------- eval
def _write_images(folder: Path, images: list[np.ndarray], encode=None) -> None:
    """``img_lmdb/`` of ``images`` under the keys clip_<index>, JPEG q95 unless ``encode`` is given."""
    encode = encode or (lambda rgb: cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                                 [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())  # fmt: skip
    with lmdb.open(str(folder / "img_lmdb"), map_size=64 << 20) as env, env.begin(write=True) as transaction:
        for index, image in enumerate(images):
            transaction.put(f"clip_{index}".encode(), encode(image))


@pytest.fixture(scope="module")
def eval_driver(samples_dir, tmp_path_factory) -> Path:
    """A driver folder of the first frames of a sample clip (already 512 x 512), matted to black
    as the release stores them, the cameras turning a little from a frontal one."""
    capture = cv2.VideoCapture(str(samples_dir / "videos" / "talking_d0.mp4"))
    images = []
    with PortraitSegmenter() as segmenter:
        while len(images) < 4 and (read := capture.read())[0]:
            rgb = cv2.resize(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            images.append(np.rint(rgb * segmenter.mask(rgb)[..., None]).astype(np.uint8))
    capture.release()
    transforms = []
    for yaw in (0.0, 1.0, 2.0, 3.0):
        transform = FRONTAL.copy()
        transform[:, :3] = Rotation.from_euler("y", yaw, degrees=True).as_matrix() @ FRONTAL[:, :3]
        transforms.append(transform)
    folder = _write_driver(tmp_path_factory.mktemp("eval") / "talking", transforms)
    _write_images(folder, images)
    return folder


def test_eval_scores_a_driver_folder_against_its_stored_frames(eval_driver, tmp_path, capsys):
    report = tmp_path / "scores.json"
    code = main(["eval", str(eval_driver), "--max-frames", "3", "--json", str(report), "--lod", "0",
                 "--renderer", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    scores = json.loads(report.read_text())
    video = scores["videos"]["talking"]
    assert scores["mode"] == "self-reenactment" and video["frames"] == 2
    for key in ("psnr", "ssim"):
        assert isinstance(video[key], float) and math.isfinite(video[key])
    # the frames' cameras, anchored at the source view, line up with the stored crops (through the
    # frames' cameras unanchored, this avatar scores PSNR 17.5 and AKD 30 px)
    assert video["psnr"] > 22.0 and video["ssim"] > 0.75 and video["akd"] < 12.0
    assert "avatar reconstructed from the first frame of talking" in captured.err


def test_a_driver_folder_drives_another_identity_in_eval(eval_driver, samples_dir, tmp_path, capsys):
    report = tmp_path / "cross.json"
    video = samples_dir / "videos" / "talking_d3.mp4"
    code = main(["eval", str(eval_driver), str(video), "--cross-identity", "--max-frames", "3", "--json", str(report),
                 "--lod", "0", "--renderer", "cpu"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    videos = json.loads(report.read_text())["videos"]
    assert set(videos) == {"talking driven by talking_d3.mp4", "talking_d3.mp4 driven by talking"}
    for scores in videos.values():
        assert scores["frames"] == 2 and scores["psnr"] is None and math.isfinite(scores["apd"])


def test_eval_of_a_driver_folder_without_its_frames_is_one_line(tmp_path, capsys):
    folder = _write_driver(tmp_path / "no_images", [FRONTAL, FRONTAL])
    code = main(["eval", str(folder)])
    assert code == 2 and "has no img_lmdb/" in _one_error_line(capsys)


def test_stored_frames_that_are_not_jpeg_or_png_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "payload"
    folder.mkdir()
    _write_images(folder, [np.zeros((4, 4, 3), np.uint8)], encode=lambda image: pickle.dumps(image))
    with DriverImages(folder) as images, pytest.raises(InputImageError) as error:
        images.image("clip_0")
    assert "frame 'clip_0' is not a readable JPEG or PNG" in str(error.value) and "\n" not in str(error.value)
    with DriverImages(folder) as images, pytest.raises(InputImageError, match="has no frame 'clip_9'"):
        images.image("clip_9")
    monkeypatch.setattr(release_images, "MAX_IMAGE_BYTES", 16)
    with DriverImages(folder) as images, pytest.raises(InputImageError, match="bytes, more than 16"):
        images.image("clip_0")  # refused by its size, before decoding
