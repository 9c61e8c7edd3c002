"""The app's facade: reconstruction jobs, driving threads, rendering views, figures."""

import itertools
import math
import threading
import time

import numpy as np
import pytest
from framing import assert_framed_with_a_margin
from waiting import wait_for, wait_until

from core.avatar import AvatarError, DrivingState
from core.errors import FrameSourceError
from core.geometry.camera import Camera
from core.render import load_ply
from core.session import (
    INSPECTION_MODES,
    MANUAL_CONTROLS,
    RateMeter,
    Session,
    View,
    idle_controls,
)
from core.session.controls import EYELID_PAIRS, LOWER_LIP, ControlRig
from core.session.driving import FOLLOWED_COLOUR, OTHER_FACE_COLOUR, PREVIEW_SIZE, _preview
from core.session.session import HOME_MARGIN, framing_orbit
from core.tracking.crop import CropBox
from core.tracking.tracker import TrackedFrame
from core.avatar.view import camera_following_head, render_view

SIZE = 256
#: Seconds a render, a tracked frame or a driver's event may take to arrive before a test fails.
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def session():
    session = Session()
    job = session.reconstruct(None, session.methods()[0])  # the demo portrait
    assert job.wait(120), "reconstruction did not finish"
    assert job.error is None and job.progress == pytest.approx(1.0)
    session.set_avatar(job.avatar, job.name)
    yield session
    session.close()


def camera(session, yaw=0.0):
    return session.avatar.camera(yaw).resized(SIZE, SIZE)


def render(session, view, state):
    return render_view(session.avatar, view, state, session.backend)


def covered(image: np.ndarray) -> float:
    """Share of pixels that are not the black background."""
    return float((image.max(axis=2) > 0.02).mean())


def test_demo_avatar_has_three_growing_levels(session):
    counts = session.lod_counts
    assert len(counts) == 3 and counts[0] < counts[1] < counts[2]
    assert session.avatar_name.startswith("astronaut")
    assert not session.has_refiner


def test_cancelling_a_reconstruction_reports_cancelled(session):
    job = session.reconstruct(None, session.methods()[0])
    job.cancel()
    assert job.wait(60)
    assert job.cancelled and job.avatar is None and job.error is None


def test_a_photo_without_a_face_fails_with_a_clear_error(session, samples_dir):
    job = session.reconstruct(samples_dir / "photos" / "dog_no_human_face.jpg", session.methods()[0])
    assert job.wait(60)
    assert job.avatar is None and "no face found" in str(job.error)


def test_each_level_of_detail_renders_the_avatar_differently(session):
    images = [render(session, View(camera(session), lod), DrivingState.neutral(478)) for lod in range(3)]
    for image in images:
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
        assert 0.15 < covered(image) < 0.95
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert np.abs(images[a] - images[b]).mean() > 1e-3


def test_inspection_modes_show_different_things(session):
    state = DrivingState.neutral(478)
    images = {mode: render(session, View(camera(session), 1, mode), state) for mode in INSPECTION_MODES}
    alpha = images["alpha"]
    assert np.allclose(alpha[..., 0], alpha[..., 1]) and alpha.max() > 0.99  # grey, opaque somewhere
    depth = images["depth"]
    assert np.abs(depth[..., 0] - depth[..., 2]).max() > 0.3  # colour-coded
    assert covered(images["points"]) < covered(images["final"])  # centres leave gaps
    visibility = images["visibility"]
    greenish = (visibility[..., 1] > visibility[..., 0] + 0.2).mean()
    orange = (visibility[..., 0] > visibility[..., 2] + 0.4).mean()
    assert greenish > 0.02  # the face the photo saw
    side = render(session, View(camera(session, yaw=100.0), 1, "visibility"), state)
    assert (side[..., 0] > side[..., 2] + 0.4).mean() > orange  # the far side was hidden from it
    for a, b in (("final", "alpha"), ("final", "depth"), ("final", "visibility"), ("alpha", "depth")):
        assert np.abs(images[a] - images[b]).mean() > 0.01


def test_background_fills_uncovered_pixels(session):
    image = render(session, View(camera(session), 0, background=(0.2, 0.4, 0.6)), DrivingState.neutral(478))
    np.testing.assert_allclose(image[0, 0], [0.2, 0.4, 0.6], atol=1e-6)


def test_follow_head_keeps_a_turned_head_where_the_camera_put_it(session):
    neutral = session.manual_state({})
    turned = session.manual_state({"yaw": 25.0})
    view = camera(session)
    reference = render(session, View(view, 1), neutral)
    moved = render(session, View(view, 1), turned)
    followed = render(session, View(view, 1, follow_head=True), turned)
    face = slice(SIZE // 4, SIZE // 2), slice(SIZE // 3, 2 * SIZE // 3)  # eyes and nose
    assert np.abs(followed[face] - reference[face]).mean() < 0.3 * np.abs(moved[face] - reference[face]).mean()


def test_the_home_view_frames_the_demo_avatar_with_a_margin(session):
    assert_framed_with_a_margin(session)


@pytest.mark.samples
def test_the_home_view_frames_big_hair_with_a_margin(einstein_avatar_file):
    session = Session()
    try:
        session.load_avatar(einstein_avatar_file)
        assert_framed_with_a_margin(session)
    finally:
        session.close()


def test_framing_orbit_fills_the_view_less_the_margins_centred():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 3)) * [0.3, 0.5, 0.2] + [0.1, 0.2, -0.4]  # taller than wide
    front = Camera.orbit(np.zeros(3), 0.0, 0.0, 1.0, 1, 1, 12.0).R
    target, distance = framing_orbit(points @ front.T, np.zeros_like(points), front, 12.0, HOME_MARGIN)
    uv, depth = Camera.orbit(target, 0.0, 0.0, distance, SIZE, SIZE, 12.0).project(points)
    low, high = uv.min(axis=0), uv.max(axis=0)
    assert (depth > 0).all()
    np.testing.assert_allclose([low[1], high[1]], [HOME_MARGIN * SIZE, (1 - HOME_MARGIN) * SIZE], atol=1e-6)
    assert HOME_MARGIN * SIZE < low[0] < high[0] < (1 - HOME_MARGIN) * SIZE  # the narrower axis keeps inside
    assert abs(low[0] + high[0] - SIZE) < 0.02 * SIZE  # and is centred (to within perspective)
    boxes = np.full_like(points, 0.05)  # boxes, not points: the same view holds them whole
    target, distance = framing_orbit(points @ front.T, boxes, front, 12.0, HOME_MARGIN)
    corners = points[:, None] + boxes[:, None] * np.array(list(itertools.product([-1, 1], repeat=3)))  # [N, 8, 3]
    uv, _ = Camera.orbit(target, 0.0, 0.0, distance, SIZE, SIZE, 12.0).project(corners.reshape(-1, 3))
    assert uv.min() >= HOME_MARGIN * SIZE - 1e-6 and uv.max() <= (1 - HOME_MARGIN) * SIZE + 1e-6


def test_camera_following_head_undoes_the_rigid_motion():
    rng = np.random.default_rng(0)
    rotation = DrivingState(np.zeros((478, 3)), _rotation_y(30.0), np.array([0.1, -0.2, 0.3]))
    pivot = np.array([0.0, -0.2, -0.4])
    points = rng.normal(size=(20, 3))
    moved = (points - pivot) @ rotation.rotation.T + pivot + rotation.translation
    from core.geometry.camera import Camera

    view = Camera.orbit((0, 0, 0), 10, 5, 9.0, 64, 64, 12.0)
    followed = camera_following_head(view, rotation, pivot)
    np.testing.assert_allclose(followed.world_to_camera(moved), view.world_to_camera(points), atol=1e-9)


def _rotation_y(degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_manual_controls_move_the_right_landmarks(session):
    landmarks = session.avatar.rig.landmarks.astype(np.float64)
    rig = ControlRig(landmarks)
    jaw = rig.state({"jaw_open": 1.0}).landmark_offsets
    assert np.all(jaw[list(LOWER_LIP), 1] < 0)  # the lower lip drops
    assert np.abs(jaw[[10, 151, 168]]).max() == 0  # the forehead and nose bridge stay
    eyes = rig.state({"eyes_closed": 1.0}).landmark_offsets
    for upper, lower in EYELID_PAIRS:
        closed = landmarks[upper] + eyes[upper]
        assert np.linalg.norm(closed - landmarks[lower]) < 0.1 * np.linalg.norm(landmarks[upper] - landmarks[lower]) + 1e-9
    smile = rig.state({"smile": 1.0}).landmark_offsets
    assert smile[61, 0] < 0 < smile[291, 0] and smile[61, 1] > 0  # corners out and up
    turned = rig.state({"yaw": 30.0})
    assert turned.rotation @ np.array([0, 0, 1.0]) == pytest.approx([0.5, 0, math.sqrt(3) / 2])
    assert np.allclose(rig.state({}).landmark_offsets, 0) and np.allclose(rig.state({}).rotation, np.eye(3))


def test_idle_animation_stays_within_the_controls_ranges_and_blinks():
    values = [idle_controls(t) for t in np.arange(0.0, 30.0, 0.02)]
    for name, (_, low, high) in MANUAL_CONTROLS.items():
        series = [value[name] for value in values]
        assert low <= min(series) and max(series) <= high, name
    assert max(value["eyes_closed"] for value in values) > 0.95
    assert np.std([value["yaw"] for value in values]) > 3.0


def test_render_thread_delivers_the_newest_request_and_reports_errors(session):
    views = [View(camera(session), lod) for lod in (0, 1)]
    requested = time.perf_counter()
    session.request_render(views, session.manual_state({}))
    frame = wait_for(session.rendered, TIMEOUT_S, "the rendered views")
    waited_ms = 1000.0 * (time.perf_counter() - requested)
    assert frame.error is None and len(frame.images) == 2 and 0 < frame.render_ms <= waited_ms
    # the module's first rendered frame: the render rate is its render time's inverse
    assert session.figures(1).render_fps == pytest.approx(1000.0 / frame.render_ms)
    session.request_render([View(camera(session), 7)], session.manual_state({}))
    frame = wait_for(session.rendered, TIMEOUT_S, "the failed render")
    assert isinstance(frame.error, AvatarError) and "LOD 7" in str(frame.error)


def _position(session, position: int):
    """The driver's newest frame if it shows video frame ``position``, else None (frames
    taken on the way are dropped)."""
    frame, events = session.poll()
    assert not events, events
    return frame if frame is not None and frame.position == position else None


def test_video_driver_tracks_every_frame_when_paced_by_the_viewer(session, samples_dir):
    driver = session.drive_video(samples_dir / "videos" / "talking_d0.mp4", paced_by_consumer=True)
    assert driver.frame_count == 78 and driver.fps == pytest.approx(25.0)
    frames = []

    def twelve_taken() -> bool:
        frame, events = session.poll()
        assert not events, events
        if frame is not None:
            frames.append(frame)
        return len(frames) >= 12

    wait_until(twelve_taken, TIMEOUT_S, "12 tracked frames", step=lambda: session.wait(0.05))
    positions = [frame.position for frame in frames]
    assert positions == list(range(positions[0], positions[0] + 12))  # none dropped
    assert all(isinstance(frame.state, DrivingState) for frame in frames[3:])
    assert frames[-1].preview.shape == (256, 256, 4)
    assert session.figures(1).tracker_ms > 0
    driver.set_paused(True)
    driver.seek(60)  # a seek shows its frame even while paused; frames tracked meanwhile are not
    wait_for(lambda: _position(session, 60), TIMEOUT_S, "frame 60", step=lambda: session.wait(0.05))
    session.wait(0.0)  # forget frame 60's wake-up call
    session.wait(0.3)  # returns early only if the driver delivers something
    assert session.poll() == (None, [])  # paused: nothing new
    started = time.monotonic()
    session.stop_driving()
    assert time.monotonic() - started < 1.0
    assert not any(thread.name.startswith("driver") for thread in threading.enumerate())


def test_a_render_that_follows_a_live_driver_takes_its_newest_state_as_it_starts(session, samples_dir):
    """A source that is not paced by the viewer moves on while a request waits for the renderer:
    the render thread draws the driver's newest state, not the one the request was made with,
    and the UI is told not to ask for that frame again."""
    driver = session.drive_video(samples_dir / "videos" / "talking_d0.mp4")  # real time: frames drop
    try:
        taken = wait_for(lambda: _driven(session), TIMEOUT_S, "a driven frame", step=lambda: session.wait(0.05))
        wait_until(lambda: driver.newest_state()[1][0] != taken.position, TIMEOUT_S, "a newer frame, not taken")
        session.request_render([View(camera(session), 0, use_refiner=False)])
        frame = wait_for(session.rendered, TIMEOUT_S, "the render", step=lambda: session.wait(0.05))
        position = frame.request.driven_by[0]
        assert position != taken.position
        assert session.renders_driven_frame(position) and not session.renders_driven_frame(taken.position)
    finally:
        session.stop_driving()
    driver = session.drive_video(samples_dir / "videos" / "talking_d0.mp4", paced_by_consumer=True)
    try:  # paced by the viewer (benchmarks): every frame taken is the one rendered
        taken = wait_for(lambda: _driven(session), TIMEOUT_S, "a paced frame", step=lambda: session.wait(0.05))
        wait_until(lambda: driver.newest_state()[1][0] != taken.position, TIMEOUT_S, "the next frame, not taken")
        session.request_render([View(camera(session), 0, use_refiner=False)])
        frame = wait_for(session.rendered, TIMEOUT_S, "the render", step=lambda: session.wait(0.05))
        assert frame.request.driven_by[0] == taken.position
    finally:
        session.stop_driving()


def _driven(session):
    frame, _ = session.poll()
    return frame if frame is not None and frame.state is not None else None


def test_the_cpu_renderer_leaves_a_core_to_the_tracker_while_one_runs(session, samples_dir, monkeypatch):
    """While a tracker drives, the render thread splats on one thread (a parallel kernel waits for
    its slowest thread, which the tracker keeps busy); otherwise on all of numba's."""
    import numba

    import core.session.rendering as rendering

    threads = []

    def recording_render_view(*args):
        threads.append(numba.get_num_threads())
        return original(*args)

    original = rendering.render_view
    monkeypatch.setattr(rendering, "render_view", recording_render_view)
    view = View(camera(session), 0, use_refiner=False)

    def rendered_with_threads(count: int) -> None:
        del threads[:]
        session.request_render([view])
        wait_for(session.rendered, TIMEOUT_S, "a render", step=lambda: session.wait(0.05))
        assert threads == [count]

    rendered_with_threads(numba.config.NUMBA_NUM_THREADS)
    session.drive_video(samples_dir / "videos" / "talking_d0.mp4", paced_by_consumer=True)
    try:
        rendered_with_threads(1)
    finally:
        session.stop_driving()
    rendered_with_threads(numba.config.NUMBA_NUM_THREADS)


def test_a_video_that_ends_without_loop_reports_it_and_pauses(session, samples_dir):
    driver = session.drive_video(samples_dir / "videos" / "talking_d0.mp4", paced_by_consumer=True)
    driver.loop = False
    driver.seek(75)
    events = wait_for(lambda: session.poll()[1] or None, TIMEOUT_S, "the end event", step=lambda: session.wait(0.05))
    assert events[0].kind == "ended" and driver.paused
    session.stop_driving()


def test_bad_sources_fail_clearly(session, tmp_path):
    fake = tmp_path / "broken.mp4"
    fake.write_text("not a video")
    with pytest.raises(FrameSourceError, match="broken.mp4"):
        session.drive_video(fake)
    session.drive_webcam(99)
    events = wait_for(lambda: session.poll()[1] or None, TIMEOUT_S, "the failure event", step=lambda: session.wait(0.05))
    assert events[0].kind == "failed" and "webcam 99" in events[0].message
    session.stop_driving()


def test_save_load_and_export_ply(session, tmp_path):
    path = session.save_avatar(tmp_path / "demo.omg")
    reloaded = Session()
    try:
        reloaded.load_avatar(path)
        assert reloaded.lod_counts == session.lod_counts and reloaded.avatar_name == "demo"
        state = session.manual_state({"jaw_open": 0.5})
        np.testing.assert_allclose(
            render(reloaded, View(camera(session), 0), state), render(session, View(camera(session), 0), state), atol=1e-5
        )
    finally:
        reloaded.close()
    ply = session.export_ply(tmp_path / "sub1.ply", 1, session.manual_state({}))
    assert len(load_ply(ply)) == session.lod_counts[1]


def test_smoothing_strength_round_trips_and_orders_cutoffs(session):
    session.set_smoothing(0.0)
    assert session.smoothing_strength() == pytest.approx(0.0)
    session.set_smoothing(0.75)
    assert session.smoothing_strength() == pytest.approx(0.75)


def test_rate_meter_counts_events_per_second():
    meter = RateMeter(window_s=1.0)
    for index in range(31):
        meter.tick(10.0 + index / 30)
    assert meter.rate(11.0) == pytest.approx(30.0)
    assert meter.rate(13.0) == 0.0  # all old


def _outlined(preview: np.ndarray, colour) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels of ``preview`` [P, P, 4] in ``colour``, None if none."""
    ys, xs = np.nonzero((np.rint(preview[..., :3] * 255) == colour).all(axis=-1))
    return (xs.min(), ys.min(), xs.max(), ys.max()) if len(xs) else None


def test_the_preview_boxes_the_followed_face_and_the_others_apart():
    side = 2 * PREVIEW_SIZE  # crop pixels are half preview pixels
    crop, box = np.zeros((side, side, 3), np.uint8), CropBox(0, 0, side, side)
    grid = np.linspace(100.0, 300.0, 5)
    landmarks = np.stack([*np.meshgrid(grid, grid), np.zeros((5, 5))], axis=-1).reshape(-1, 3)
    inside, beyond = np.array([360.0, 100.0, 500.0, 240.0]), np.array([-300.0, 400.0, -100.0, 500.0])
    followed = TrackedFrame(0, 0.0, crop, box, landmarks, None, None, other_faces=inside[None])
    preview = _preview(followed)
    assert np.allclose(_outlined(preview, FOLLOWED_COLOUR), (50, 50, 150, 150), atol=2)
    assert np.allclose(_outlined(preview, OTHER_FACE_COLOUR), (180, 50, 250, 120), atol=2)
    beside = TrackedFrame(0, 0.0, crop, box, landmarks, None, None, other_faces=beyond[None])
    assert np.allclose(_outlined(_preview(beside), OTHER_FACE_COLOUR), (0, 200, 0, 250), atol=2)  # a bar on the left edge
    others = np.stack([inside, beyond])
    lost = TrackedFrame(1, 0.1, crop, box, None, None, None, other_faces=others)
    assert _outlined(_preview(lost), FOLLOWED_COLOUR) is None  # nobody followed in this frame
    assert _outlined(_preview(lost), OTHER_FACE_COLOUR) is not None


def test_network_files_in_use_are_the_chosen_ones_else_the_release_names_in_the_models_folder(tmp_path, monkeypatch):
    from core.avatar.network_method import NetworkFiles
    from core.session.reconstruction import network_files_in_use

    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    defaults = network_files_in_use(NetworkFiles())
    assert defaults.checkpoint == tmp_path / "checkpoints" / "omg_ckpt.pt"  # the release's, when neither is there
    assert defaults.flame == tmp_path / "flame" / "FLAME_with_eye.pt"
    assert defaults.dinov2 == tmp_path / "dinov2" / "dinov2_vitb14_pretrain.pth"
    ours = tmp_path / "checkpoints" / "omg_avatar.safetensors"
    ours.parent.mkdir()
    ours.write_bytes(b"")
    assert network_files_in_use(NetworkFiles()).checkpoint == ours  # only ours is there
    (tmp_path / "checkpoints" / "omg_ckpt.pt").write_bytes(b"")
    assert network_files_in_use(NetworkFiles()).checkpoint.name == "omg_ckpt.pt"  # the release's first
    chosen = NetworkFiles(flame=tmp_path / "elsewhere.pt")
    assert network_files_in_use(chosen).flame == tmp_path / "elsewhere.pt"


def test_a_driver_folder_turns_a_training_free_head_by_the_drivers_motion_since_its_first_frame(session, tmp_path):
    from driver_folders import write_driver_folder

    driver = session.drive_release_folder(write_driver_folder(tmp_path / "driver", session.avatar, [10.0, 30.0]))
    assert not driver.poses_expressions  # no FLAME rig: the source expression stays
    angles = {}

    def both_seen() -> bool:
        update, events = session.poll()
        assert not events, events
        if update is not None:
            rotation = update.state.rotation
            angles[update.position] = math.degrees(math.acos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
            assert update.state.flame is None
        return len(angles) == 2

    wait_until(both_seen, TIMEOUT_S, "both frames", step=lambda: session.wait(0.05))
    session.stop_driving()
    assert angles[0] == pytest.approx(0.0, abs=0.5) and angles[1] == pytest.approx(20.0, abs=0.5)
