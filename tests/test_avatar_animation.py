"""The animation core: driving states from tracked frames, and what they move."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from core.avatar import Animator, DrivingState, reconstruct
from core.avatar.animation import (
    CLOSED_EYE_OPENNESS,
    DEPTH_DEAD_ZONE,
    EYELID_PAIRS,
    NECK_SLACK,
    PITCH_GAIN,
    ROTATION_DEAD_ZONE_DEG,
    fit_similarity,
)
from core.avatar.training_free.face_topology import face_topology
from core.avatar.view import View, render_view
from core.config import load_config
from core.driving import DrivingPipeline
from core.tracking.head_pose import RIGID_LANDMARKS
from core.tracking.photo import portrait_from_image
from core.tracking.sources import open_source
from core.tracking.tracker import TrackedFrame, Tracker

CONFIG = load_config("paper")
LOD = 1
INNER_LIPS = (13, 14)
IRIS_CENTRES = (468, 473)


@pytest.fixture(scope="module")
def driving(samples_dir):
    """Self-reenactment material: the avatar of a clip's first frame and the clip's tracked frames."""
    with open_source(str(samples_dir / "videos" / "talking_d0.mp4")) as source:
        frames = [frame for frame in source]
    portrait = portrait_from_image(frames[0].rgb, "talking_d0 frame 0", CONFIG.tracking)
    avatar = reconstruct(portrait, config=CONFIG)
    with Tracker.from_config(CONFIG) as tracker:
        tracked = [tracker.track(frame) for frame in frames]
    return portrait, avatar, tracked


def _frame(landmarks: np.ndarray | None, index: int = 1) -> TrackedFrame:
    return TrackedFrame(index, index / 30.0, None, None, landmarks, None, None)


def _mouth_gap(points) -> float:
    return float(np.linalg.norm(points[INNER_LIPS[0]] - points[INNER_LIPS[1]]))


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 3))
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    target = 1.7 * source @ rotation.T + np.array([3.0, -1.0, 0.5])
    fit = fit_similarity(source, target)
    assert fit.scale == pytest.approx(1.7)
    np.testing.assert_allclose(fit.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(fit.inverse()(fit(source)), source, atol=1e-9)


@pytest.mark.samples
def test_driving_changes_only_head_positions(driving):
    _, avatar, tracked = driving
    animator = Animator(avatar, reference_frames=1)
    neutral = avatar.gaussians(LOD)
    head = len(avatar.lods[LOD])
    moved = 0
    for frame in tracked[::10]:
        state = animator.drive(frame)
        posed = avatar.gaussians(LOD, state)
        for name in ("quats", "scales", "opacities", "features"):
            assert torch.equal(getattr(posed, name), getattr(neutral, name))
        shoulders = avatar.rig.follow(neutral.means[head:].numpy(), avatar.shoulder_rigidity, state)
        torch.testing.assert_close(posed.means[head:], torch.from_numpy(shoulders))  # the body's and the neck's motion
        moved += int(not torch.equal(posed.means[:head], neutral.means[:head]))
    assert moved >= len(tracked[::10]) - 1  # every frame after the reference moves the head


@pytest.mark.samples
def test_reference_frame_poses_the_avatar_as_its_photo(driving):
    portrait, avatar, _ = driving
    state = Animator(avatar).drive(_frame(portrait.crop.landmarks.copy()))
    np.testing.assert_allclose(state.landmark_offsets, 0.0, atol=1e-9)
    np.testing.assert_allclose(state.rotation, np.eye(3), atol=1e-9)
    torch.testing.assert_close(avatar.head_means(LOD, state), avatar.head_means(LOD))


@pytest.mark.samples
def test_opening_mouth_opens_the_avatars_mouth(driving):
    _, avatar, tracked = driving
    animator = Animator(avatar, reference_frames=1)
    states = [animator.drive(frame) for frame in tracked]
    driver_gap = np.array([_mouth_gap(frame.landmarks) for frame in tracked])
    widest = int(np.argmax(driver_gap))
    assert driver_gap[widest] > driver_gap[0] + 10.0  # the clip opens the mouth (pixels at 512)
    # Vertex v < 468 of every level refines landmark v of the control mesh.
    neutral_gap = _mouth_gap(avatar.head_means(LOD).numpy())
    open_gap = _mouth_gap(avatar.head_means(LOD, states[widest]).numpy())
    face_scale = avatar.camera().K[0, 0] / avatar.camera().world_to_camera(avatar.rig.centre)[2]  # px per unit
    print(f"\nmouth gap: driver {driver_gap[widest] - driver_gap[0]:.1f} px, avatar {(open_gap - neutral_gap) * face_scale:.1f} px")
    assert (open_gap - neutral_gap) * face_scale == pytest.approx(driver_gap[widest] - driver_gap[0], rel=0.35)


@pytest.mark.samples
def test_head_turn_becomes_a_rotation_about_head_up(driving):
    portrait, avatar, _ = driving
    landmarks = portrait.crop.landmarks.astype(np.float64)
    animator = Animator(avatar)
    animator.drive(_frame(landmarks))
    centre = landmarks.mean(axis=0)
    turn = Rotation.from_euler("y", 15, degrees=True).as_matrix()  # about the image's vertical axis
    state = animator.drive(_frame((landmarks - centre) @ turn.T + centre, index=2))
    rotation = Rotation.from_matrix(state.rotation).as_rotvec(degrees=True)
    assert np.linalg.norm(rotation) == pytest.approx(15.0, abs=1.5)
    assert abs(rotation[1]) > 0.95 * np.linalg.norm(rotation)  # about head +y (up)
    np.testing.assert_allclose(state.landmark_offsets, 0.0, atol=0.05)  # a pure turn has no expression


def _driven_by_turn(avatar, landmarks: np.ndarray, axis: str, degrees: float, across=(0.0, 0.0, 0.0)):
    """The state after a neutral frame of ``landmarks`` and the same landmarks turned by
    ``degrees`` about crop ``axis`` (x nods, y turns) around their rigid centre and moved
    ``across`` [3] crop pixels."""
    centre = landmarks[list(RIGID_LANDMARKS)].mean(axis=0)
    turn = Rotation.from_euler(axis, degrees, degrees=True).as_matrix()
    animator = Animator(avatar, reference_frames=1)
    animator.drive(_frame(landmarks))
    return animator.drive(_frame((landmarks - centre) @ turn.T + centre + np.asarray(across), index=2))


def _rigid_centre_shift(avatar, state) -> np.ndarray:
    """[2] how far ``state`` moves the avatar's rigid landmarks' centre in the source view, px."""
    neutral = avatar.rig.landmarks[list(RIGID_LANDMARKS)]
    posed = avatar.rig.follow(neutral, np.ones(len(neutral), np.float32), state)  # moved with the head
    return avatar.source_camera.project(posed)[0].mean(axis=0) - avatar.source_camera.project(neutral)[0].mean(axis=0)


def _degrees(state) -> float:
    return float(np.degrees(Rotation.from_matrix(state.rotation).magnitude()))


@pytest.mark.samples
@pytest.mark.parametrize("degrees, followed", [(0.8, (0.0, 0.0)), (2.0, (0.2, 1.8)), (5.0, (4.5, 5.5))])
def test_turns_within_the_dead_zone_are_not_followed_and_larger_ones_in_full(driving, degrees, followed):
    """A still head making faces reads as 1-4 degrees of turn: below ROTATION_DEAD_ZONE_DEG
    the avatar's head does not turn, above it follows in full, partly in between; in every
    case its rigid landmarks' centre lands where the driver's is (here 10 px to the right)."""
    portrait, avatar, _ = driving
    state = _driven_by_turn(avatar, portrait.crop.landmarks.astype(np.float64), "y", degrees, (10.0, 0.0, 0.0))
    assert ROTATION_DEAD_ZONE_DEG[0] < 2.0 < ROTATION_DEAD_ZONE_DEG[1] < 5.0
    assert followed[0] <= _degrees(state) <= followed[1]
    np.testing.assert_allclose(_rigid_centre_shift(avatar, state), (10.0, 0.0), atol=0.5)


@pytest.mark.samples
def test_a_nod_beyond_the_gains_range_is_scaled_up_and_a_turn_is_not(driving):
    """MediaPipe's landmarks under-read nods (0.72 of them on rendered heads): a 12-degree nod
    of the landmarks nods the avatar by PITCH_GAIN times that, a 12-degree turn turns it by 12."""
    portrait, avatar, _ = driving
    landmarks = portrait.crop.landmarks.astype(np.float64)
    followed = {axis: _degrees(_driven_by_turn(avatar, landmarks, axis, 12.0)) for axis in "xy"}
    gain, (_, full_from) = PITCH_GAIN
    assert full_from < 12.0
    assert followed["y"] == pytest.approx(12.0, abs=1.0)
    assert followed["x"] == pytest.approx(gain * 12.0, abs=1.0)
    assert followed["x"] > 1.25 * followed["y"]


@pytest.mark.samples
def test_a_nod_turns_the_head_about_its_neck_without_moving_it_in_depth(driving):
    """Rotating about the pivot moves the face's centre in depth; pinning that centre would
    push the whole head back or forth (2-3 cm at 15 degrees), off the driver's outline.
    The pivot keeps its depth, and the face's centre still lands where the driver's is."""
    portrait, avatar, _ = driving
    state = _driven_by_turn(avatar, portrait.crop.landmarks.astype(np.float64), "x", 15.0)
    assert _degrees(state) > 10.0
    camera = avatar.source_camera
    pivot = avatar.rig.pivot.astype(np.float64)
    assert camera.world_to_camera(pivot + state.translation)[2] == pytest.approx(camera.world_to_camera(pivot)[2], abs=1e-6)
    np.testing.assert_allclose(_rigid_centre_shift(avatar, state), 0.0, atol=1.0)


#: MediaPipe's forehead and brow points (the frontalis lifts them together).
FOREHEAD_AND_BROWS = (10, 151, 9, 8, 109, 338, 67, 297, 21, 251, 54, 284, 103, 332, 104, 333, 69, 299, 108, 337,
                      70, 63, 105, 66, 107, 300, 293, 334, 296, 336, 46, 53, 52, 65, 55, 276, 283, 282, 295, 285)  # fmt: skip


@pytest.mark.samples
def test_raised_brows_on_a_still_head_neither_turn_nor_move_it(driving):
    """The brows and the forehead's skin rise by 6 % of the face's width, nothing else moves:
    the head stays (fitting the head's motion to the forehead read this as a nod and a
    zoom, and the whole avatar's head, crown and hair, moved with it)."""
    portrait, avatar, _ = driving
    landmarks = portrait.crop.landmarks.astype(np.float64)
    animator = Animator(avatar, reference_frames=1)
    animator.drive(_frame(landmarks))
    raised = landmarks.copy()
    raised[list(FOREHEAD_AND_BROWS), 1] -= 0.06 * np.linalg.norm(landmarks[234, :2] - landmarks[454, :2])
    state = animator.drive(_frame(raised, index=2))
    assert Rotation.from_matrix(state.rotation).magnitude() < np.radians(0.1)
    assert np.linalg.norm(state.translation) < 1e-3
    assert np.abs(state.landmark_offsets[list(FOREHEAD_AND_BROWS)]).max() > 0.01  # the raise is expression


@pytest.mark.samples
@pytest.mark.parametrize("zoom", [0.97, 1.04, 1.15, 0.85])
def test_the_face_growing_is_a_move_in_depth_beyond_the_dead_zone(driving, zoom):
    """The whole face scaled about the head's pivot: by a nod's or an expression's few
    percent the head keeps its depth; leaning in (or back) by more moves it toward (away
    from) the camera, by the pivot's depth times the change beyond the dead zone."""
    portrait, avatar, _ = driving
    landmarks = portrait.crop.landmarks.astype(np.float64)
    animator = Animator(avatar, reference_frames=1)
    animator.drive(_frame(landmarks))
    to_avatar = fit_similarity(landmarks[list(RIGID_LANDMARKS)], avatar.rig.landmarks[list(RIGID_LANDMARKS)])
    centre = to_avatar.inverse()(avatar.rig.pivot[None].astype(np.float64))[0]  # the pivot in the driver's crop
    state = animator.drive(_frame((landmarks - centre) * zoom + centre, index=2))
    forward = avatar.source_camera.R[2]  # the source camera's viewing direction in head space
    pivot_depth = avatar.source_camera.world_to_camera(avatar.rig.pivot)[2]
    shrink = 1.0 / zoom - 1.0  # what the frame's face needs to match the reference's
    change = np.sign(shrink) * max(abs(shrink) - DEPTH_DEAD_ZONE, 0.0)
    assert state.translation @ forward == pytest.approx(pivot_depth * change, abs=0.02 * pivot_depth * abs(shrink))


@pytest.mark.samples
def test_eyes_follow_the_irises(driving):
    portrait, avatar, _ = driving
    landmarks = portrait.crop.landmarks.astype(np.float64)
    animator = Animator(avatar)
    animator.drive(_frame(landmarks))
    glance = landmarks.copy()
    glance[468:, 0] += 4.0  # both irises 4 pixels to the image's right
    state = animator.drive(_frame(glance, index=2))
    level = avatar.first_level + LOD
    on_eyes = avatar.levels.refine(avatar.rig.binding[:, list(IRIS_CENTRES)].sum(axis=1).A1, level) > 0.99
    motion = (avatar.head_means(LOD, state) - avatar.head_means(LOD)).numpy()
    assert on_eyes.sum() > 50
    assert (motion[on_eyes, 0] > 0.005).all()  # towards the image's right is head +x (subject's left)
    assert np.abs(motion[~on_eyes]).max() < 0.5 * motion[on_eyes, 0].min()


@pytest.mark.samples
def test_recenter_takes_the_next_frame_as_neutral(driving):
    _, avatar, tracked = driving
    animator = Animator(avatar, reference_frames=1)
    animator.drive(tracked[0])
    assert np.abs(animator.drive(tracked[40]).landmark_offsets).max() > 0.01
    animator.recenter()
    state = animator.drive(tracked[40])
    np.testing.assert_allclose(state.landmark_offsets, 0.0, atol=1e-9)


@pytest.mark.samples
def test_frames_without_a_face_repeat_the_last_state(driving):
    _, avatar, tracked = driving
    animator = Animator(avatar, reference_frames=1)
    neutral = DrivingState.neutral(len(avatar.rig.landmarks))
    np.testing.assert_array_equal(animator.drive(_frame(None)).landmark_offsets, neutral.landmark_offsets)
    animator.drive(tracked[0])
    state = animator.drive(tracked[40])
    assert animator.drive(_frame(None, index=41)) is state


@pytest.mark.samples
def test_a_switch_to_another_person_takes_their_face_as_the_new_neutral(driving):
    _, avatar, tracked = driving
    with DrivingPipeline(CONFIG, avatar, reference_frames=1, track=False) as pipeline:
        driven = [pipeline.step_tracked(frame).state for frame in tracked[:40]]
        switched = pipeline.step_tracked(dataclasses.replace(tracked[40], switched=True)).state
        after = pipeline.step_tracked(tracked[41]).state
    assert np.abs(driven[-1].landmark_offsets).max() > 1e-3  # the clip moves away from its first frame
    np.testing.assert_allclose(switched.landmark_offsets, 0.0, atol=1e-9)  # frame 40 is the neutral now
    np.testing.assert_allclose(switched.rotation, np.eye(3), atol=1e-9)
    fresh = Animator(avatar, reference_frames=1)
    fresh.drive(tracked[40])
    np.testing.assert_allclose(after.landmark_offsets, fresh.drive(tracked[41]).landmark_offsets, atol=1e-9)


@pytest.mark.samples
@pytest.mark.parametrize("shift_face_widths, body_share", [(0.05, 0.0), (0.5, 1.0 - NECK_SLACK / 0.5)])
def test_the_body_follows_a_head_that_moves_across_the_image_beyond_the_necks_slack(driving, shift_face_widths,
                                                                                    body_share):  # fmt: skip
    """The driver's face shifted sideways: by a nod's few pixels the shoulders stay; by half a
    face width (stepping aside) they follow all but the slack, and the neck's base goes
    with them instead of stretching to the head."""
    portrait, avatar, _ = driving
    reference = portrait.crop.landmarks.astype(np.float64)
    face_width = np.linalg.norm(reference[234, :2] - reference[454, :2])
    moved = reference + np.array([shift_face_widths * face_width, 0.0, 0.0])
    animator = Animator(avatar, reference_frames=1)
    animator.drive(_frame(reference, 0))
    state = animator.drive(_frame(moved, 1))
    camera, head = avatar.source_camera, len(avatar.lods[LOD])

    on_body = avatar.shoulder_rigidity == 0.0  # not hair bending with the neck

    def shoulder_x(gaussians) -> float:
        means = gaussians.means[head:].numpy()[on_body].astype(np.float64)
        return float(np.median(camera.project(means)[0][:, 0]))

    shift = shoulder_x(avatar.gaussians(LOD, state)) - shoulder_x(avatar.gaussians(LOD))
    assert shift == pytest.approx(body_share * shift_face_widths * face_width, abs=0.02 * face_width)
    base = avatar.rig.rigidity == 0.0  # the neck's lowest ring, bound to the body
    assert base.any()
    neck_moved = avatar.rig.posed(state)[base] - avatar.rig.vertices[base]
    np.testing.assert_allclose(neck_moved, np.broadcast_to(state.body_translation, neck_moved.shape), atol=1e-5)


@pytest.fixture(scope="module")
def long_hair(samples_dir):
    """The portrait and avatar of a clip's first frame whose hair falls onto the shoulders."""
    with open_source(str(samples_dir / "videos" / "talking_busy_background.mp4")) as source:
        first = next(iter(source))
    portrait = portrait_from_image(first.rgb, "talking_busy_background frame 0", CONFIG.tracking)
    return portrait, reconstruct(portrait, config=CONFIG)


@pytest.mark.samples
@pytest.mark.parametrize("euler_deg", [(0, 0, 25), (0, 30, 0), (20, 0, 0)], ids=["roll", "yaw", "pitch"])
def test_hair_beside_the_neck_moves_with_the_neck_instead_of_tearing_from_it(long_hair, euler_deg):
    """Below the chin the neck bends from the head's motion to the body's; shoulder Gaussians
    at the same height (hair falling beside the neck) bend with it: a static sheet left the
    hair behind while the neck and the head moved, tearing it at the jaw."""
    portrait, avatar = long_hair
    state = DrivingState(np.zeros((478, 3)), Rotation.from_euler("xyz", euler_deg, degrees=True).as_matrix(), np.zeros(3))
    camera, landmarks = avatar.source_camera, portrait.crop.landmarks
    chin_row, face_height = landmarks[152, 1], landmarks[152, 1] - landmarks[10, 1]

    def in_band(points: np.ndarray) -> np.ndarray:
        rows = camera.project(points.astype(np.float64))[0][:, 1]
        return (rows > chin_row + 0.05 * face_height) & (rows < chin_row + 0.2 * face_height)

    neck = (avatar.rig.rigidity > 0.0) & (avatar.rig.rigidity < 1.0) & in_band(avatar.rig.vertices)
    sheet = in_band(avatar.shoulders.means.numpy())
    assert neck.sum() >= 10 and sheet.sum() >= 50
    neck_moved = np.linalg.norm(avatar.rig.posed(state)[neck] - avatar.rig.vertices[neck], axis=1)
    sheet_posed = avatar.gaussians(LOD, state).means[len(avatar.lods[LOD]) :].numpy()
    sheet_moved = np.linalg.norm(sheet_posed[sheet] - avatar.shoulders.means.numpy()[sheet], axis=1)
    assert np.median(neck_moved) > 0.02  # the neck bends there
    assert np.median(sheet_moved) >= 0.6 * np.median(neck_moved)


@pytest.mark.samples
def test_an_opening_mouth_shows_a_dark_interior_and_teeth(driving):
    """The clip's widest mouth, twice as wide, on the avatar of its closed-mouth first frame:
    between the driven inner lips the render is dark with some teeth (it showed a lip- and
    skin-coloured patch: the bowl took the closed lips' colours, and the neck's top showed
    through it)."""
    _, avatar, tracked = driving
    animator = Animator(avatar, reference_frames=1)
    states = [animator.drive(frame) for frame in tracked]
    widest = int(np.argmax([_mouth_gap(frame.landmarks) for frame in tracked]))
    state = dataclasses.replace(states[widest], landmark_offsets=2.0 * states[widest].landmark_offsets)
    camera = avatar.camera()
    image = render_view(avatar, View(camera, LOD, background=(1.0, 1.0, 1.0)), state, "cpu")
    # Vertex v < 468 of every level refines landmark v of the control mesh.
    inner_lips = camera.project(avatar.head_means(LOD, state).numpy().astype(np.float64))[0][face_topology().mouth]
    opening = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(inner_lips).astype(np.int32)], 1)
    luminance = image[cv2.erode(opening, np.ones((5, 5), np.uint8)) > 0] @ np.array([0.299, 0.587, 0.114])
    assert len(luminance) > 1000
    assert luminance.mean() < 0.33
    assert (luminance > 0.55).mean() >= 0.02  # teeth


@pytest.mark.samples
def test_a_closed_eye_closes_the_avatars_eye_fully(driving):
    """The driver's lids come down to a fifth of their open gap (where MediaPipe leaves a
    closed eye): the avatar's lids meet (a transferred offset left a fifth of the eye open)."""
    portrait, avatar, _ = driving
    reference = portrait.crop.landmarks.astype(np.float64)
    closed = reference.copy()
    for pairs in EYELID_PAIRS:
        for upper, lower in pairs:
            middle = (reference[upper] + reference[lower]) / 2.0
            closed[upper] = middle + CLOSED_EYE_OPENNESS * (reference[upper] - middle)
            closed[lower] = middle + CLOSED_EYE_OPENNESS * (reference[lower] - middle)
    animator = Animator(avatar, reference_frames=1)
    animator.drive(_frame(reference, 0))
    posed = avatar.head_means(LOD, animator.drive(_frame(closed, 1))).numpy()  # vertex v < 468: landmark v
    neutral = avatar.head_means(LOD).numpy()
    for pairs in EYELID_PAIRS:
        upper, lower = pairs[len(pairs) // 2]
        assert np.linalg.norm(posed[upper] - posed[lower]) < 0.05 * np.linalg.norm(neutral[upper] - neutral[lower])


def test_a_rendered_image_is_clipped_to_the_unit_range(driving):
    """An out-of-range background (or colour) is clipped: the image is float32 in 0..1."""
    _, avatar, _ = driving
    view = View(avatar.camera(), 0, background=(2.0, -1.0, 0.5))
    image = render_view(avatar, view, None, "cpu")
    assert image.dtype == np.float32 and image.flags.c_contiguous
    assert image.min() >= 0.0 and image.max() <= 1.0
    np.testing.assert_allclose(image[0, 0], (1.0, 0.0, 0.5))  # the corner shows the background
