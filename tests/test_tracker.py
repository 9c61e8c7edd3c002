"""Head pose from landmarks, and the per-frame tracker on synthetic and sample frames."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.config import load_config
from core.geometry.camera import Camera
from core.media import AtomicMp4Writer
from core.tracking.crop import landmark_box
from core.tracking.face_mesh import FaceMesh
from core.tracking.follow import SWITCH_AFTER_S
from core.tracking.head_pose import (
    EYE_CORNERS,
    FRONTAL,
    NOSE_BASE,
    HeadPose,
    estimate_head_pose,
    head_rotation,
)
from core.tracking.photo import prepare_portrait, read_image
from core.tracking.sources import Frame, VideoFileSource
from core.tracking.tracker import STAGES, TrackedFrame, Tracker

CONFIG = load_config("paper")
SIZE = CONFIG.tracking.crop.output_size
INTRINSICS = Camera.intrinsics(SIZE, SIZE, CONFIG.camera.focal_normalized)


def euler_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    yaw, pitch, roll = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    return ry @ rx @ rz


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = (np.trace(a.T @ b) - 1.0) / 2.0
    return math.degrees(math.acos(np.clip(cosine, -1.0, 1.0)))


@pytest.fixture(scope="module")
def static_mesh():
    with FaceMesh(CONFIG.tracking, static=True) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def frontal_landmarks(samples_dir) -> np.ndarray:
    """[478, 3] crop-pixel landmarks of a frontal, upright portrait."""
    return prepare_portrait(samples_dir / "photos" / "man_bw_2048.jpg", CONFIG.tracking).crop.landmarks


# ----------------------------------------------------------------- head pose


def test_euler_angles_read_back_the_rotation_they_describe():
    pose = HeadPose(FRONTAL @ euler_rotation(25.0, -10.0, 5.0), np.zeros(3))
    np.testing.assert_allclose(pose.yaw_pitch_roll_deg(), (25.0, -10.0, 5.0), atol=1e-9)


@pytest.mark.samples
def test_frontal_portrait_has_small_angles_and_a_plausible_distance(frontal_landmarks):
    pose = estimate_head_pose(frontal_landmarks, INTRINSICS, CONFIG.flame.scale)
    yaw, pitch, roll = pose.yaw_pitch_roll_deg()
    assert abs(yaw) < 8 and abs(pitch) < 8 and abs(roll) < 8
    np.testing.assert_allclose(pose.rotation.T @ pose.rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(pose.rotation) == pytest.approx(1.0)
    # In front of the camera, near the crop's optical axis, a head-sized distance away.
    assert 3.0 < pose.translation[2] < 30.0
    assert np.abs(pose.translation[:2]).max() < 0.15 * pose.translation[2]


@pytest.mark.samples
def test_mirroring_the_image_flips_the_sign_of_yaw(samples_dir, static_mesh):
    rgb = read_image(samples_dir / "photos" / "einstein.jpg")  # turned about 10 degrees
    yaw = estimate_head_pose(static_mesh.detect(rgb), INTRINSICS, 5.0).yaw_pitch_roll_deg()[0]
    mirrored = estimate_head_pose(static_mesh.detect(rgb[:, ::-1]), INTRINSICS, 5.0).yaw_pitch_roll_deg()[0]
    assert abs(yaw) > 5.0
    assert np.sign(mirrored) == -np.sign(yaw)
    assert abs(mirrored + yaw) < 3.0


@pytest.mark.samples
def test_a_known_rotation_of_the_landmarks_is_recovered(frontal_landmarks):
    centre = frontal_landmarks.mean(axis=0)
    before = head_rotation(frontal_landmarks)
    for angles in [(30.0, 0.0, 0.0), (0.0, -20.0, 0.0), (-25.0, 15.0, 10.0)]:
        # A rotation of the head about its own axes is, in camera space, R_cam = before @ R @ before^T.
        turn = before @ euler_rotation(*angles) @ before.T
        turned = (frontal_landmarks - centre) @ turn.T + centre
        after = head_rotation(turned)
        assert angle_between_deg(after, turn @ before) < 0.01
        relative = HeadPose(FRONTAL @ before.T @ after, np.zeros(3)).yaw_pitch_roll_deg()
        np.testing.assert_allclose(relative, angles, atol=0.01)


@pytest.mark.samples
def test_a_face_twice_as_large_about_its_own_centre_is_half_as_far(frontal_landmarks):
    far = estimate_head_pose(frontal_landmarks, INTRINSICS, CONFIG.flame.scale).translation
    head_centre_px = (INTRINSICS @ far / far[2])[:2]
    larger = frontal_landmarks * 2.0
    larger[:, :2] -= head_centre_px  # scaled about the head's own image position
    near = estimate_head_pose(larger, INTRINSICS, CONFIG.flame.scale).translation
    np.testing.assert_allclose(near, far / 2, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- tracker


def test_frames_without_a_face_are_reported_not_raised():
    with Tracker.from_config(CONFIG) as tracker:
        result = tracker.track(Frame(np.full((240, 320, 3), 90, np.uint8), 7, 0.25))
    assert (result.index, result.timestamp_s) == (7, 0.25)
    assert not result.tracked
    assert result.landmarks is None and result.head_pose is None and result.camera is None
    assert result.crop is None and result.box is None  # no face yet: no framing
    assert set(result.stage_ms) == {"face_mesh"}


@pytest.mark.samples
def test_tracker_keeps_the_framing_and_reframes_after_reset(samples_dir):
    portrait = read_image(samples_dir / "photos" / "einstein.jpg")
    blank = np.zeros_like(portrait)
    shifted = np.roll(portrait, 40, axis=1)
    with Tracker.from_config(CONFIG) as tracker:
        first = tracker.track(Frame(portrait, 0, 0.0))
        lost = tracker.track(Frame(blank, 1, 0.04))
        moved = tracker.track(Frame(shifted, 2, 0.08))
        tracker.reset()
        reframed = tracker.track(Frame(shifted, 3, 0.12))
    assert first.tracked and not lost.tracked and moved.tracked
    assert lost.box == first.box and lost.crop is not None  # framing survives a lost face
    assert moved.box == first.box
    shift_in_crop = 40 * first.box.scale
    shift = np.median(moved.landmarks[:, 0] - first.landmarks[:, 0])
    assert shift == pytest.approx(shift_in_crop, abs=1.5)
    assert abs(reframed.box.x0 - (first.box.x0 + 40)) <= 2
    assert first.camera.width == SIZE and first.landmarks.shape == (478, 3)
    np.testing.assert_allclose(first.camera.K, INTRINSICS)
    np.testing.assert_allclose(first.camera.R, first.head_pose.rotation)
    # The camera projects the head-space origin where the landmarks put it.
    uv, depth = first.camera.project(np.zeros(3))
    anchors = first.landmarks[list(EYE_CORNERS + NOSE_BASE), :2]
    assert depth > 0 and np.abs(uv - anchors.mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(tracker.intrinsics, INTRINSICS)


@pytest.mark.samples
def test_sample_video_is_tracked_in_real_time(samples_dir):
    """Acceptance: >= 99% of frames tracked; prints tracking and decode ms per frame."""
    tracked, track_ms, decode_ms = 0, [], []
    video = samples_dir / "videos" / "talking_d0.mp4"
    with VideoFileSource(video) as source, Tracker.from_config(CONFIG) as tracker:
        while True:
            started = time.perf_counter()
            frame = source.read()
            decode_ms.append((time.perf_counter() - started) * 1000.0)
            if not isinstance(frame, Frame):
                break
            started = time.perf_counter()
            result = tracker.track(frame)
            track_ms.append((time.perf_counter() - started) * 1000.0)
            tracked += result.tracked
            assert set(result.stage_ms) == set(STAGES)
    fraction = tracked / len(track_ms)
    print(
        f"\ntalking_d0: {len(track_ms)} frames, tracked {fraction:.3f}, "
        f"tracking {np.mean(track_ms):.2f} ms/frame (median {np.median(track_ms):.2f}), "
        f"decode {np.mean(decode_ms):.2f} ms/frame"
    )
    assert len(track_ms) == 78
    assert fraction >= 0.99


# ----------------------------------------------------------------- two people

TWO_PEOPLE_FPS = 30.0
SIDE = 480  # each person's half of the frame
GROWS = 10  # from this frame on the right face is larger than the left one (smaller before)
LEAVES = 45  # from this frame on the left person is gone
FRAMES = LEAVES + round(2 * SWITCH_AFTER_S * TWO_PEOPLE_FPS)


def _scaled(rgb: np.ndarray, scale: float) -> np.ndarray:
    """``rgb`` [SIDE, SIDE, 3] scaled about its centre on a grey SIDE x SIDE canvas."""
    matrix = np.array([[scale, 0.0, (1 - scale) * SIDE / 2], [0.0, scale, (1 - scale) * SIDE / 2]])
    return cv2.warpAffine(rgb, matrix, (SIDE, SIDE), flags=cv2.INTER_AREA, borderValue=(128, 128, 128))


@pytest.fixture(scope="module")
def two_people(samples_dir, tmp_path_factory) -> Path:
    """A 960x480 video of FRAMES frames at 30 fps: talking_d18 on the left, empty from frame
    LEAVES on; talking_d19 on the right, its face smaller than the left one before frame GROWS,
    larger from it."""
    videos = samples_dir / "videos"
    path = tmp_path_factory.mktemp("two_people") / "two_people.mp4"
    with (
        VideoFileSource(videos / "talking_d18.mp4") as left,
        VideoFileSource(videos / "talking_d19.mp4") as right,
        AtomicMp4Writer(path, TWO_PEOPLE_FPS, 2 * SIDE, SIDE) as writer,
    ):
        for index in range(FRAMES):
            person = left.read().rgb if index < LEAVES else np.full((SIDE, SIDE, 3), 128, np.uint8)
            other = _scaled(right.read().rgb, 0.6 if index < GROWS else 1.5)
            writer.write(cv2.hconcat([person, other]))
    return path


def _source_x(tracked: TrackedFrame) -> float:
    """Mean x of the tracked landmarks in frame pixels."""
    return float(tracked.box.to_source(tracked.landmarks)[:, 0].mean())


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


@pytest.mark.samples
def test_the_tracker_follows_one_person_and_switches_only_after_losing_them(two_people):
    with VideoFileSource(two_people) as source, Tracker.from_config(CONFIG) as tracker:
        tracked = list(tracker.track_frames(source))
    assert len(tracked) == FRAMES
    first = tracked[0]
    # Both people present: every frame follows the left one, also while the right face is larger.
    assert all(frame.tracked and _source_x(frame) < SIDE for frame in tracked[:LEAVES])
    assert all(frame.box == first.box and not frame.switched for frame in tracked[:LEAVES])
    larger = [frame for frame in tracked[GROWS:LEAVES] if len(frame.other_faces) == 1]
    assert len(larger) >= 0.9 * (LEAVES - GROWS)  # the right face was found beside the followed one
    assert all(_area(frame.other_faces[0]) > 1.5 * _area(landmark_box(frame.landmarks)) for frame in larger)
    # The left person gone: no face for SWITCH_AFTER_S, then the right person, reframed.
    gone = tracked[LEAVES:]
    switch = next(k for k, frame in enumerate(gone) if frame.tracked)
    assert SWITCH_AFTER_S * TWO_PEOPLE_FPS <= switch <= SWITCH_AFTER_S * TWO_PEOPLE_FPS + 2
    assert all(len(frame.other_faces) == 1 for frame in gone[:switch])  # seen, and not followed
    assert gone[switch].switched and gone[switch].box.x0 > first.box.x0 + SIDE / 2
    assert all(frame.tracked and _source_x(frame) > SIDE and not frame.switched for frame in gone[switch + 1 :])


# ----------------------------------------------------------------- small faces

SMALL_FACE_PX = 50  # the face's landmark box side in the full-body frame
FULL_BODY = (1080, 720)  # frame height, width


@pytest.mark.samples
def test_a_small_face_moving_in_a_full_body_frame_is_tracked_in_every_frame(samples_dir, static_mesh):
    """A face of 50 px in a 720x1080 frame (far below what the face mesh's own detector
    finds) sliding 3 px per frame: tracked in every frame, landmarks where the photo's go."""
    photo = read_image(samples_dir / "photos" / "einstein.jpg")
    photo_landmarks = static_mesh.detect(photo)
    low, high = np.split(landmark_box(photo_landmarks), 2)
    scale = SMALL_FACE_PX / float((high - low).max())
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    errors, tracked = [], 0
    with Tracker.from_config(CONFIG) as tracker:
        for index in range(30):
            frame = np.full((*FULL_BODY, 3), 128, np.uint8)
            x0, y0 = 200 + 3 * index, 150 + index
            frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
            result = tracker.track(Frame(frame, index, index / 30.0))
            tracked += result.tracked
            if result.tracked:
                expected = photo_landmarks[:, :2] * scale + (x0, y0)
                found = result.box.to_source(result.landmarks)[:, :2]
                errors.append(np.median(np.linalg.norm(found - expected, axis=1)))
    assert tracked == 30
    assert np.max(errors) < 0.06 * SMALL_FACE_PX  # 3 px: landmarks on the face, smoothing lag included
