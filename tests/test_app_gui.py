"""The real window under Xvfb: launch, a sample photo and video, LOD 0 -> 1 -> 2, orbit,
capture, errors as dialogs, closing, and the command line's smoke run.

All tests of this module share one window (Dear PyGui allows one per process) and run
in order. Without a display they start Xvfb; without Xvfb they skip with a message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.tracking.native_log import NATIVE_NOISE
from waiting import wait_until

pytestmark = pytest.mark.slow

WINDOW = (1280, 800)
#: Seconds any wait of these tests may take before it fails.
TIMEOUT_S = 60.0
#: Render rates no working renderer falls outside of, on any machine: a frame of these
#: views takes more than 0.1 ms and less than a second (a slip of units or of a factor fails).
PLAUSIBLE_FPS = (1.0, 10_000.0)
#: A screenshot's pixel shows the view's black background when no channel exceeds this (the
#: overlay's translucent box, over the image's top left corner, is about 16 there).
BACKGROUND_LEVEL = 24
#: Pixels along each border of the view's image that must show only background.
BORDER_BAND = 4


def _end_with_parent() -> None:
    """In the Xvfb child: receive SIGTERM when the test process dies, even if it crashes."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="module")
def display():
    """A display for the window: $DISPLAY if set, else a private Xvfb."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("GUI tests need a display: set DISPLAY or install Xvfb (Debian package xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_end_with_parent,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        del os.environ["DISPLAY"]
        server.terminate()
        server.wait(5)


@pytest.fixture(scope="module")
def app(display, samples_dir, tmp_path_factory):
    from app.main import AppOptions, start

    options = AppOptions(photo=samples_dir / "photos" / "einstein.jpg", lod=0, width=WINDOW[0], height=WINDOW[1],
                         settings_dir=tmp_path_factory.mktemp("settings"))
    app = start(options)
    yield app
    app.close()


def step_until(app, condition, what: str) -> None:
    """Run the app's loop until ``condition()`` holds (at most :data:`TIMEOUT_S`)."""
    wait_until(condition, TIMEOUT_S, what, step=app.step)


def new_image(app) -> np.ndarray:
    """Step until a frame requested after now is on screen; a copy of its pixels."""
    app.invalidate()
    app.step()
    target = app.requested
    step_until(app, lambda: app.shown_request >= target, "a new frame")
    return app.viewport.first_image().copy()


def overlay_fps(app) -> float:
    """The render FPS the overlay shows (0 while it shows none)."""
    found = re.search(r"Render\s+([\d.]+) FPS", app.viewport.overlay_text())
    return float(found.group(1)) if found else 0.0


def test_launch_builds_the_avatar_and_shows_it_with_figures(app):
    step_until(app, lambda: app.avatar_frames >= 3, "the first avatar frames")
    image = app.viewport.first_image()
    assert (image.max(axis=2) > 0.05).mean() > 0.15  # the avatar covers the view
    step_until(app, lambda: overlay_fps(app) > 0, "FPS in the overlay")
    assert PLAUSIBLE_FPS[0] < overlay_fps(app) < PLAUSIBLE_FPS[1]
    text = app.viewport.overlay_text()
    assert "End-to-end" in text and "LOD Sub#0" in text, text
    assert f"{app.session.lod_counts[0]:,} Gaussians" in text, text


def test_switching_lod_changes_the_pixels_and_the_overlay(app):
    app.driving_panel.set_mode("manual")  # a still avatar: only the LOD changes
    images = []
    for lod in (0, 1, 2):
        app.view.lod = lod
        images.append(new_image(app))
        assert app.shown_lod == lod
    for a, b in ((0, 1), (1, 2)):
        assert np.abs(images[a] - images[b]).mean() > 1e-3, f"Sub#{a} and Sub#{b} look the same"
    step_until(app, lambda: f"{app.session.lod_counts[2]:,} Gaussians" in app.viewport.overlay_text(), "overlay")


def test_orbiting_changes_the_view_and_reset_restores_it(app):
    front = new_image(app)
    app.camera.orbit(150, 30)
    turned = new_image(app)
    assert np.abs(turned - front).mean() > 0.02
    app.camera.reset()
    np.testing.assert_allclose(new_image(app), front, atol=1e-4)


def test_an_image_is_on_screen_in_the_first_frame_drawn_after_it_and_the_window_fills_the_viewport(app):
    """Dear PyGui shows a raw texture's new image one drawn frame late; the view must not
    (the latency the app measures ends when the frame is drawn). Read from the X screen."""
    import dearpygui.dearpygui as dpg
    from PIL import ImageGrab

    side = app.viewport.render_size
    left, top, right, bottom = app.viewport.image_rect()
    for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        app.viewport.show([np.full((side, side, 3), np.divide(colour, 255), np.float32)])
        dpg.render_dearpygui_frame()
        screen = np.asarray(ImageGrab.grab(xdisplay=os.environ["DISPLAY"]))
        showing = np.all(screen == colour, axis=2).sum()
        assert showing > 0.9 * (right - left) * (bottom - top), (colour, showing)
    dpg.set_viewport_width(WINDOW[0] - 100)
    step_until(app, lambda: dpg.get_item_width(app.window) == dpg.get_viewport_client_width() == WINDOW[0] - 100,
               "the window to follow the viewport's size")
    dpg.set_viewport_width(WINDOW[0])
    step_until(app, lambda: dpg.get_item_width(app.window) == WINDOW[0], "the window back at full size")


def test_driving_from_a_video_moves_the_avatar_and_previews_the_face(app, samples_dir):
    import dearpygui.dearpygui as dpg

    app.guarded(app.driving_panel.play_video, samples_dir / "videos" / "talking_d3.mp4")
    assert app.driving_panel.mode == "video" and app.video is not None
    step_until(app, lambda: app.session.figures(0).tracker_ms is not None, "tracked frames")
    preview = app.driving_panel.preview_image
    assert preview[..., 3].min() == 1.0 and preview[..., :3].std() > 0.05  # an opaque picture of the face
    first = new_image(app)
    scrub = app.driving_panel.scrub
    start = dpg.get_value(scrub)
    step_until(app, lambda: dpg.get_value(scrub) >= start + app.video.fps / 2, "half a second of video")
    assert np.abs(new_image(app) - first).mean() > 1e-3
    app.video.set_paused(True)
    step_until(app, lambda: app.video.paused, "pause")


def test_a_live_stream_drives_the_avatar_and_a_stall_or_closed_server_is_one_status_line(app, samples_dir):
    """The URL typed in the webcam panel drives the avatar; the panel and the overlay show the
    stream's resolution and rate; a 3 s stall and a server that goes away are one status
    line each, never a dialog, and driving resumes by itself within 2 s of frames returning."""
    import dearpygui.dearpygui as dpg

    from core.driving.loopback import LoopbackCamera
    from core.errors import FrameSourceError
    from core.session import LatencyMeter

    panel, dialogs = app.driving_panel, len(app.dialogs.shown)
    with LoopbackCamera(samples_dir / "videos" / "talking_d0.mp4", size=(640, 480), fps=30.0) as camera:
        dpg.set_value(panel.url_input, camera.url)
        app.guarded(panel._connect_url)
        assert panel.mode == "webcam" and camera.url in dpg.get_item_configuration(panel.device)["items"]
        app.latency = LatencyMeter()  # counts driven frames as they reach the screen
        step_until(app, lambda: app.latency.frames > 10, "frames of the stream on screen")
        step_until(app, lambda: "640x480" in dpg.get_value(panel.source_text), "the stream's size in the panel")
        step_until(app, lambda: "Camera 640x480" in app.viewport.overlay_text(), "the stream in the overlay")

        camera.stall(3.0)
        back_at = time.monotonic() + 3.0
        step_until(app, lambda: "reconnecting" in app._status, "the stall in the status line")
        assert "reconnecting" in dpg.get_value(panel.webcam_status)
        step_until(app, lambda: "Camera no frames for" in app.viewport.overlay_text(), "the stall in the overlay")
        shown = app.latency.frames
        step_until(app, lambda: app.latency.frames > shown, "driving after the stall")
        assert time.monotonic() - back_at < 2.0
        step_until(app, lambda: "is back" in app._status, "the stream back in the status line")
        assert not dpg.get_item_configuration(panel.webcam_status)["show"]
    step_until(app, lambda: "reconnecting" in app._status, "the closed server in the status line")
    assert len(app.dialogs.shown) == dialogs  # no dialog for any of it
    app.latency = None
    app.guarded(panel.set_mode, "idle")
    app.session.stop_driving()

    dpg.set_value(panel.url_input, "camera-one")
    with pytest.raises(FrameSourceError, match="not a stream URL: 'camera-one'"):  # a dialog, through guarded()
        panel._connect_url()


def test_capture_screenshot_recording_ply_and_presenter(app, tmp_path):
    from core.render import load_ply

    app.guarded(app.screenshot, tmp_path / "view.png")
    png = cv2.imread(str(tmp_path / "view.png"))
    assert png.shape == (512, 512, 3) and png.max() > 50

    app.guarded(app.start_recording, tmp_path / "take.mp4")
    assert app.recorder is not None
    app.driving_panel.set_mode("idle")  # moving: every frame is new
    started = time.monotonic()
    step_until(app, lambda: time.monotonic() - started > 1.0, "a second of recording")
    app.guarded(app.stop_recording)
    video = cv2.VideoCapture(str(tmp_path / "take.mp4"))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) >= 20
    video.release()

    app.guarded(app.export_ply, tmp_path / "avatar.ply")
    assert len(load_ply(tmp_path / "avatar.ply")) == app.session.lod_counts[app.view.lod]

    app.toggle_presenter()
    step_until(app, lambda: app.presenter.is_open, "the presenter window")
    step_until(app, lambda: app.avatar_frames > 0 and app.presenter.is_open, "frames to the presenter")
    started = time.monotonic()
    app.toggle_presenter()
    assert not app.presenter.is_open and time.monotonic() - started < 1.0
    assert not app.dialogs.shown, app.dialogs.shown


def test_errors_show_a_dialog_and_the_app_keeps_running(app, samples_dir, tmp_path):
    import dearpygui.dearpygui as dpg

    app.open_photo(samples_dir / "photos" / "dog_no_human_face.jpg")
    step_until(app, lambda: app.job is None, "the failed reconstruction")
    assert app.dialogs.shown[-1][0].startswith("Cannot build an avatar")
    assert "no face found" in app.dialogs.shown[-1][1]
    assert len(app.dialogs.open_dialogs()) == 1
    app.dialogs.error(*app.dialogs.shown[-1])  # the same error again stacks no second dialog
    assert len(app.dialogs.open_dialogs()) == 1
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    app.guarded(app.driving_panel.play_video, broken)
    assert app.dialogs.shown[-1][0] == "Cannot open the video source"
    app.guarded(app.open_avatar, tmp_path / "missing.omg")
    assert "not found" in app.dialogs.shown[-1][1]
    app.guarded(app.driving_panel.start_webcam, 9)
    step_until(app, lambda: app.dialogs.shown[-1][0] == "Driving stopped", "the webcam's failure")
    assert app.dialogs.shown[-1][1].startswith("cannot open webcam 9: ")
    status = app.driving_panel.webcam_status  # the webcam group stays open and says why
    assert dpg.get_value(status) == app.dialogs.shown[-1][1] and dpg.get_item_configuration(status)["show"]
    assert app.driving_panel.mode == "webcam" and dpg.get_item_configuration(app.driving_panel.webcam_group)["show"]
    app.driving_panel.set_mode("idle")
    before = app.avatar_frames
    step_until(app, lambda: app.avatar_frames > before + 2, "frames after the errors")  # still the old avatar
    assert app.session.avatar_name == "einstein.jpg"


#: Progress messages of the network method (core/avatar/network_method.py).
NETWORK_STEPS = ("loading the network checkpoint", "loading FLAME for fitting", "fitting FLAME to the photo",
                 "encoding the photo", "reconstructing Sub#", "assembling the avatar")


def new_refined(app) -> tuple[np.ndarray, np.ndarray]:
    """Step until a refined frame of a request made after now is the main image; copies of its
    pixels and of the inset's (the live coarse stream)."""
    app.invalidate()
    app.step()
    target = app.requested
    step_until(app, lambda: app.refined_request >= target, "a new refined frame")
    assert app.viewport.insets_shown == 1
    return app.viewport.first_image().copy(), app.viewport.first_inset().copy()


def test_the_network_method_names_missing_files_reconstructs_with_progress_and_refines_off_the_splat_path(
    app, samples_dir, tmp_path, monkeypatch
):
    import dearpygui.dearpygui as dpg
    from network_files import frontal_face_landmarks, write_network_files

    source, view = app.source_panel, app.view_panel
    assert not dpg.is_item_shown(source.network_group) and not app.session.has_refiner
    assert not dpg.is_item_enabled(view.refiner_box)
    empty = tmp_path / "no_models"
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(empty))
    source._method_chosen(source.method, "network")
    assert app.method == "network" and dpg.is_item_shown(source.network_group)
    assert dpg.get_value(source.file_labels["checkpoint"]) == "omg_ckpt.pt (default, missing)"
    assert dpg.get_value(source.file_labels["flame"]) == "FLAME_with_eye.pt (default, missing)"
    dialogs = len(app.dialogs.shown)
    app.open_photo(samples_dir / "photos" / "einstein.jpg")
    step_until(app, lambda: app.job is None, "the refused reconstruction")
    assert len(app.dialogs.shown) == dialogs + 1  # one dialog naming every missing file and where it goes
    message = app.dialogs.shown[-1][1]
    assert str(empty / "checkpoints" / "omg_ckpt.pt") in message and str(empty / "flame" / "FLAME_with_eye.pt") in message

    files = write_network_files(tmp_path / "models", frontal_face_landmarks(samples_dir, app.session.config))
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(files.models))
    source.set_network_file("flame", files.flame)
    assert dpg.get_value(source.file_labels["checkpoint"]) == "omg_avatar.safetensors (default)"  # ours: no release's
    assert dpg.get_value(source.file_labels["flame"]) == "FLAME_with_eye.pt (chosen)"
    assert dpg.get_value(source.file_labels["dinov2"]) == "dinov2_vitb14_pretrain.pth (default)"
    app.driving_panel.set_mode("manual")
    app.open_photo(samples_dir / "photos" / "einstein.jpg")
    progress: set[str] = set()

    def built() -> bool:
        progress.add(dpg.get_item_configuration(source.progress)["overlay"])
        return app.job is None

    step_until(app, built, "the network reconstruction")
    assert app.session.avatar.method == "network", app.dialogs.shown[-1:]
    assert any(step in text for text in progress for step in NETWORK_STEPS), progress
    assert dpg.is_item_enabled(view.refiner_box) and dpg.get_value(view.refiner_box)

    refined, live = new_refined(app)  # the refined frame big, the live coarse splat in the inset
    assert np.abs(refined[::2, ::2] - live).mean() > 1e-3
    step_until(app, lambda: "refined FPS" in app.viewport.overlay_text(), "the refiner's cost in the overlay")
    assert re.search(r"Refiner\s+\d+ ms a frame\s+[\d.]+ refined FPS", app.viewport.overlay_text())
    for lod in range(len(app.session.lod_counts)):  # Sub#0/1/2, refined
        app.view.lod = lod
        new_refined(app)
        assert app.shown_lod == lod
    view._refiner_changed(view.refiner_box, False)
    assert not app.session.use_refiner
    coarse = new_image(app)
    assert app.viewport.insets_shown == 0 and np.abs(refined - coarse).mean() > 1e-3
    step_until(app, lambda: "Refiner" not in app.viewport.overlay_text(), "the overlay without the refiner")


def test_a_driver_folder_drives_the_network_avatar_and_a_hostile_one_is_a_dialog(app, tmp_path):
    import dearpygui.dearpygui as dpg
    from driver_folders import write_driver_folder, write_hostile_folder

    panel = app.driving_panel
    panel.play_folder(write_driver_folder(tmp_path / "driver", app.session.avatar, [0.0, 25.0]))
    assert panel.mode == "folder" and dpg.is_item_shown(panel.folder_group) and panel.folder is not None
    step_until(app, lambda: "expressions: FLAME codes" in dpg.get_value(panel.folder_text), "driven frames")
    images = []
    step_until(app, lambda: images.append(new_image(app)) or np.abs(images[-1] - images[0]).mean() > 1e-2,
               "the head to turn")
    marker = tmp_path / "marker"
    driver, dialogs = panel.folder, len(app.dialogs.shown)
    panel.play_folder(write_hostile_folder(tmp_path / "hostile", marker))
    assert len(app.dialogs.shown) == dialogs + 1 and app.dialogs.shown[-1][0] == "Cannot drive from this folder"
    assert "refused" in app.dialogs.shown[-1][1] and not marker.exists()
    assert panel.folder is driver and panel.mode == "folder"  # the good folder goes on
    before = app.avatar_frames
    step_until(app, lambda: app.avatar_frames > before + 2, "frames after the dialog")

    app.view_panel._refiner_changed(app.view_panel.refiner_box, True)  # driven and refined: no flicker
    new_refined(app)
    main, inset, refined = app.viewport.first_image(), app.viewport.first_inset(), app.refined_request
    changes = {"main": 0, "inset": 0}
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        app.step()
        if app.viewport.first_image() is not main:
            assert app.refined_request != refined  # the main image changes only to a newer refined frame
            main, refined, changes["main"] = app.viewport.first_image(), app.refined_request, changes["main"] + 1
        if app.viewport.first_inset() is not inset:
            inset, changes["inset"] = app.viewport.first_inset(), changes["inset"] + 1
    assert changes["inset"] > max(3, changes["main"]), changes  # the live coarse stream runs at its own rate
    app.source_panel._method_chosen(app.source_panel.method, "training-free")
    assert not dpg.is_item_shown(app.source_panel.network_group)


def test_closing_stops_every_thread_within_a_second(app):
    app.toggle_presenter()
    step_until(app, lambda: app.presenter.is_open, "the presenter window")
    started = time.monotonic()
    app.close()
    assert time.monotonic() - started < 1.5
    names = [thread.name for thread in threading.enumerate()]
    assert not [name for name in names if name.startswith(("driving", "render", "reconstruction", "capture"))], names
    assert not app.presenter.is_open


def test_smoke_run_from_the_command_line(display, samples_dir, tmp_path):
    screenshot, figures = tmp_path / "smoke.png", tmp_path / "smoke.json"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "app", "--smoke", "--photo", str(samples_dir / "photos" / "einstein.jpg"),
         "--video", str(samples_dir / "videos" / "talking_d0.mp4"), "--frames", "40", "--window", "1280x800",
         "--screenshot", str(screenshot), "--json", str(figures)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DISPLAY": display},
    )
    run_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["frames"] == 40 == sum(level["frames"] for level in line["per_lod"].values())
    # the requested level's counted frames were all shown during the run
    assert line["per_lod"]["sub1"]["frames"] / run_s <= line["end_to_end_fps"]
    assert PLAUSIBLE_FPS[0] < line["render_fps"] < PLAUSIBLE_FPS[1]
    assert json.loads(figures.read_text()) == line
    window = cv2.imread(str(screenshot))
    assert window.shape == (800, 1280, 3) and window.std() > 10


def test_the_smoke_run_with_a_stream_measures_its_latency(display, samples_dir, tmp_path):
    from core.driving.loopback import LoopbackCamera

    with LoopbackCamera(samples_dir / "videos" / "talking_d0.mp4", size=(640, 480), fps=30.0) as camera:
        result = subprocess.run(
            [sys.executable, "-m", "core.cli", "app", "--smoke", "--webcam", camera.url, "--frames", "60",
             "--window", "1280x800", "--renderer", "cpu"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "DISPLAY": display},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    latency = line["latency"]
    assert latency["frames_shown"] > 10 and line["frames_dropped"] == latency["frames_dropped"] >= 0
    assert 0.0 < line["latency_ms_median"] <= line["latency_ms_p95"] < 2000.0
    assert 0.0 < line["driven_fps"] <= 31.0
    main = line["per_lod"][f"sub{line['lod']}"]  # the top-level figures are the requested level's
    assert (main["latency_ms_median"], main["latency_ms_p95"], main["driven_fps"]) == (
        line["latency_ms_median"], line["latency_ms_p95"], line["driven_fps"])
    assert sum(1 for figures in line["per_lod"].values() if "latency_ms_median" in figures) >= 2  # the excursion


def test_the_smoke_run_frames_the_demo_avatar_with_a_margin_on_every_side(display, tmp_path):
    screenshot, figures = tmp_path / "smoke.png", tmp_path / "smoke.json"
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "app", "--smoke", "--frames", "40", "--window", "1280x800",
         "--screenshot", str(screenshot), "--json", str(figures)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DISPLAY": display},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    left, top, right, bottom = json.loads(figures.read_text())["view_image"]
    view = cv2.imread(str(screenshot))[top:bottom, left:right]
    assert view.shape[0] == view.shape[1] > 200  # the whole square image
    drawn = view.max(axis=2) > BACKGROUND_LEVEL
    band = BORDER_BAND
    for side, edge in {"top": drawn[:band], "bottom": drawn[-band:], "left": drawn[:, :band],
                       "right": drawn[:, -band:]}.items():
        assert not edge.any(), f"the avatar touches the view's {side} border"
    assert drawn.mean() >= 0.25  # head and shoulders, not a small figure in the middle


def test_a_missing_webcam_is_one_error_line_on_every_run(display):
    for _ in range(3):  # the line once went missing in most runs (stderr silenced by a graph's start)
        result = subprocess.run(
            [sys.executable, "-m", "core.cli", "app", "--smoke", "--webcam", "9", "--frames", "5", "--window", "640x480"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "DISPLAY": display},
        )  # fmt: skip
        lines = result.stderr.splitlines()
        assert result.returncode == 2, result.stderr[-2000:]
        errors = [line for line in lines if line.startswith("omg-avatar: error:")]
        assert len(errors) == 1 and errors[0].startswith("omg-avatar: error: Driving stopped: cannot open webcam 9: ")
        assert "/dev/video9 does not exist" in errors[0] or not sys.platform.startswith("linux")
        assert not [line for line in lines if NATIVE_NOISE.match(line.encode()) or "Traceback" in line]


def test_mouse_gestures_orbit_pan_zoom_and_reset(display, samples_dir, tmp_path):
    """A real mouse through xdotool (skipped without it); runs the app in a subprocess, as the
    module's own window is closed by now."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (Debian package xdotool): mouse gestures not exercised")
    script = tmp_path / "gestures.py"
    script.write_text(GESTURE_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "DISPLAY": display, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 0, result.stderr[-2000:]
    states = json.loads(result.stdout.strip().splitlines()[-1])
    start, orbited, panned, zoomed, reset = states
    assert orbited[0] < start[0] - 10  # left drag to the right: yaw decreases
    assert orbited[2:] == start[2:]
    assert panned[:3] == orbited[:3] and panned[3:] != orbited[3:]  # right drag: only the target moves
    assert zoomed[2] < panned[2]  # wheel up: closer
    assert reset == start  # double-click


GESTURE_SCRIPT = '''
import json, subprocess, sys, time
import dearpygui.dearpygui as dpg
from app.main import AppOptions, start


def run_for(app, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.step()


def xdo(*args):
    subprocess.run(["xdotool", *map(str, args)], check=True)


if __name__ == "__main__":
    app = start(AppOptions(width=1280, height=800))
    while app.avatar_frames < 3:
        app.step()
    app.driving_panel.set_mode("manual")
    run_for(app, 0.3)
    (x0, y0), (w, h) = dpg.get_item_rect_min(app.viewport.drawlist), dpg.get_item_rect_size(app.viewport.drawlist)
    x, y = int(x0 + w / 2), int(y0 + h / 2)
    states = [app.camera.state()]
    for button, moves in ((1, [(x + dx, y) for dx in range(0, 101, 10)]), (3, [(x + 100, y + dy) for dy in range(0, 61, 10)])):
        xdo("mousemove", *moves[0]); run_for(app, 0.1)
        xdo("mousedown", button); run_for(app, 0.1)
        for move in moves[1:]:
            xdo("mousemove", *move); run_for(app, 0.05)
        xdo("mouseup", button); run_for(app, 0.2)
        states.append(app.camera.state())
    for _ in range(3):
        xdo("click", 4); run_for(app, 0.1)
    states.append(app.camera.state())
    xdo("click", "--repeat", 2, "--delay", 80, 1); run_for(app, 0.3)
    states.append(app.camera.state())
    app.close()
    print(json.dumps(states))
'''
