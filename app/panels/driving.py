"""The driving panel: idle animation, a video file (play, pause, loop, scrub), a webcam or
network stream (local devices and recent stream URLs, a URL field, the camera's resolution,
rate and drops; preview with the followed face's box and landmarks), a tracked driver folder
of the OMG-Avatar release (its FLAME codes and cameras, looping at its rate), manual sliders,
recenter and smoothing.

Exactly one mode drives the avatar. Moving a manual slider switches to manual control;
the video pauses (and resumes when the video mode is chosen again), a webcam stops.
"""

from __future__ import annotations

import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app import theme
from app.panels.widgets import recent_label, set_value_if_changed, tooltip
from core.errors import FrameSourceError, OmgError
from core.session import (
    MANUAL_CONTROLS,
    PREVIEW_SIZE,
    DrivingEvent,
    DrivingUpdate,
    ReleaseFolderDriver,
    WebcamDriver,
    is_stream_url,
    list_webcams,
    shown_url,
)

MODES = {"idle": "Idle animation", "video": "Video file", "webcam": "Webcam", "folder": "Driver folder (release)",
         "manual": "Manual control"}
#: Width of the preview image in the sidebar, pixels.
PREVIEW_WIDTH = 180
#: What the stream URL field shows while empty, and its tooltip.
URL_HINT = "http://PHONE-IP:8080/video or rtsp://..."
URL_HELP = ("A network camera: a phone camera app's MJPEG stream (IP Webcam, DroidCam and the like: "
            "http://PHONE-IP:PORT/video, with the phone on this computer's network), an RTSP camera "
            "(rtsp://user:password@host/...), or 'omg-avatar loopback-camera VIDEO' on this computer "
            "(http://127.0.0.1:8090/video). OBS's virtual camera is a local camera: pick it above.")


class DrivingPanel:
    def __init__(self, app):
        self.app = app
        self.mode = "idle"
        self._idle_started = time.perf_counter()
        self._recent_paths: list[str] = []
        self._folder_info = ""
        self._cameras: list[int | str] = []  # the device picker's entries: webcam numbers, then recent URLs
        # Raw: a dynamic texture's set_value converts the array element by element on the UI
        # thread (1-2.5 ms for a preview); a raw one reads the array given, kept alive here,
        # and shows it a drawn frame later (the avatar's view may not: see app.frame_texture).
        self._preview_buffer = np.zeros((PREVIEW_SIZE, PREVIEW_SIZE, 4), np.float32)
        with dpg.texture_registry():
            self._preview_texture = dpg.add_raw_texture(PREVIEW_SIZE, PREVIEW_SIZE, self._preview_buffer,
                                                        format=dpg.mvFormat_Float_rgba)
        with dpg.collapsing_header(label="Driving", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_text("Source")
                self.mode_combo = dpg.add_combo(list(MODES.values()), default_value=MODES["idle"], width=-1,
                                                callback=self._mode_chosen)
            with dpg.group(show=False) as self.video_group:
                with dpg.group(horizontal=True):
                    dpg.add_button(label="Open video...", width=170, callback=self.ask_video)
                    self.recent = dpg.add_combo([], default_value="Recent videos", width=-1,
                                                callback=self._recent_chosen)
                with dpg.group(horizontal=True):
                    self.play_button = dpg.add_button(label="Pause", width=80, callback=self._toggle_play)
                    self.loop_box = dpg.add_checkbox(label="Loop", default_value=True, callback=self._loop_changed)
                    self.time_text = dpg.add_text("", color=theme.TEXT_DIM)
                self.scrub = dpg.add_slider_int(width=-1, min_value=0, max_value=1, format="frame %d",
                                                callback=self._scrubbed)
            with dpg.group(show=False) as self.webcam_group:
                with dpg.group(horizontal=True):
                    self.device = dpg.add_combo([], width=170)
                    dpg.add_button(label="Start", width=70, callback=self._start_webcam)
                    dpg.add_button(label="Refresh", width=-1, callback=self._refresh_webcams)
                with dpg.group(horizontal=True):
                    self.url_input = dpg.add_input_text(hint=URL_HINT, width=-80, on_enter=True,
                                                        callback=self._connect_url)
                    tooltip(self.url_input, URL_HELP)
                    dpg.add_button(label="Connect", width=-1, callback=self._connect_url)
                self.webcam_status = dpg.add_text("", color=theme.TEXT_DIM, wrap=260, show=False)
            with dpg.group(show=False) as self.folder_group:
                open_folder = dpg.add_button(label="Open driver folder...", width=-1, callback=self.ask_folder)
                tooltip(open_folder, "A folder tracked by the OMG-Avatar release's tracker: smoothed.pkl or "
                        "optim.pkl with every frame's FLAME codes and camera. It plays in a loop; the head moves "
                        "as the driver's did, and the expressions follow when the avatar has its FLAME model.")
                self.folder_text = dpg.add_text("", color=theme.TEXT_DIM, wrap=300)
            with dpg.group(show=False) as self.tracking_group:
                with dpg.group(horizontal=True):
                    self.preview = dpg.add_image(self._preview_texture, width=PREVIEW_WIDTH, height=PREVIEW_WIDTH)
                    tooltip(self.preview, "The green box is the face that drives the avatar; orange boxes are other "
                            "faces, ignored until the green one has been gone for a while.")
                    with dpg.group():
                        self.source_text = dpg.add_text("", color=theme.TEXT_DIM, wrap=120)
                        self.recenter_button = dpg.add_button(label="Recenter", width=-1, callback=self._recenter)
                        tooltip(self.recenter_button, "Take the driving face as it is now as the neutral face.")
                self.smoothing = dpg.add_slider_float(label="Smoothing", min_value=0.0, max_value=1.0, width=-90,
                                                      default_value=app.session.smoothing_strength(), format="%.2f",
                                                      callback=lambda _, value: app.session.set_smoothing(value))
                tooltip(self.smoothing, "How much tracked motion is smoothed: more hides jitter, less follows "
                        "fast motion closely.")
            with dpg.tree_node(label="Manual control", default_open=True):
                self.sliders = {}
                for name, (label, low, high) in MANUAL_CONTROLS.items():
                    self.sliders[name] = dpg.add_slider_float(
                        label=label, min_value=low, max_value=high, default_value=0.0, width=-100,
                        format="%.0f deg" if high > 1.0 else "%.2f", callback=self._slider_moved)
                dpg.add_button(label="Neutral face", width=-1, callback=self._neutral)
            dpg.add_spacer(height=4)
        self._refresh_recent()
        self._refresh_webcams()

    # ------------------------------------------------------------------ modes
    def _mode_chosen(self, sender, label: str) -> None:
        mode = next(key for key, value in MODES.items() if value == label)
        if mode == "video":
            if self.app.video is not None:
                self.app.video.set_paused(False)
                self.set_mode("video")
            else:
                self.set_mode(self.mode)
                self.ask_video()
        elif mode == "webcam":
            self.set_mode(self.mode)
            self._start_webcam()
        elif mode == "folder":
            self.set_mode("folder" if self.folder is not None else self.mode)
            if self.folder is None:
                self.ask_folder()
        else:
            self._leave_source(keep_video=True)
            self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        dpg.set_value(self.mode_combo, MODES[mode])
        dpg.configure_item(self.video_group, show=mode == "video")
        dpg.configure_item(self.webcam_group, show=mode == "webcam")
        dpg.configure_item(self.folder_group, show=mode == "folder")
        dpg.configure_item(self.tracking_group, show=mode in ("video", "webcam"))
        if mode == "idle":
            self._idle_started = time.perf_counter()
        self.app.invalidate()

    def _leave_source(self, keep_video: bool) -> None:
        if self.app.video is not None and keep_video:
            self.app.video.set_paused(True)
        elif self.app.session.driver is not None:
            self.app.session.stop_driving()

    def play_video(self, path: Path, paced_by_consumer: bool = False) -> None:
        """Drive from the video at ``path`` (also the command line's ``--video``; the smoke run
        paces it by the viewer instead of real time)."""
        driver = self.app.session.drive_video(path, paced_by_consumer)
        driver.loop = dpg.get_value(self.loop_box)
        self.app.recent.add("video", path)
        self._refresh_recent()
        dpg.configure_item(self.scrub, max_value=max(1, driver.frame_count - 1))
        dpg.set_value(self.source_text, f"{path.name}\n{driver.frame_count} frames\n{driver.fps:.0f} fps")
        self.set_mode("video")

    def start_webcam(self, spec: int | str, stamped: bool = False) -> None:
        """Drive from webcam ``spec`` (a number) or the stream at URL ``spec`` (also the command
        line's ``--webcam``; ``stamped``: measure its latency, see :mod:`app.smoke`). It opens on
        the driving thread: if it cannot, :meth:`driving_stopped` shows why. A URL joins the
        recent ones."""
        if isinstance(spec, str):
            self.app.recent.remember("stream", spec)
            self._refresh_webcams()
        self.app.session.drive_webcam(spec, stamped)
        self._show_webcam_status("")
        dpg.set_value(self.device, _camera_label(spec))
        dpg.set_value(self.source_text, _camera_label(spec))
        self.set_mode("webcam")

    def play_folder(self, path: Path) -> None:
        """Drive from the release driver folder at ``path``; one that cannot be read is a dialog
        and the current source goes on."""
        try:
            driver = self.app.session.drive_release_folder(path)
        except OmgError as exc:
            self.app.report(exc, title="Cannot drive from this folder")
            return
        self._folder_info = f"{driver.name}\n{driver.frame_count} frames at {driver.fps:.0f} fps, looping"
        self.set_mode("folder")

    @property
    def folder(self) -> ReleaseFolderDriver | None:
        driver = self.app.session.driver
        return driver if isinstance(driver, ReleaseFolderDriver) else None

    def ask_folder(self) -> None:
        self.app.dialogs.ask_file("driver_folder", self.play_folder)

    def ask_video(self) -> None:
        self.app.dialogs.ask_file("video", self.play_video)

    def _recent_chosen(self, sender, label: str) -> None:
        labels = [recent_label(path) for path in self._recent_paths]
        if label in labels:
            self.play_video(Path(self._recent_paths[labels.index(label)]))
        dpg.set_value(self.recent, "Recent videos")

    def _start_webcam(self) -> None:
        if not self._cameras:
            self._refresh_webcams()
        if not self._cameras:
            self._show_webcam_status("No camera found: none is connected to this computer. "
                                     "Enter a stream URL below to use a network camera.")  # fmt: skip
            raise FrameSourceError("no webcam found: no camera is connected to this computer "
                                   "(a network camera's stream URL goes in the field below)")  # fmt: skip
        labels = [_camera_label(spec) for spec in self._cameras]
        label = dpg.get_value(self.device)
        self.start_webcam(self._cameras[labels.index(label)] if label in labels else self._cameras[0])

    def _connect_url(self) -> None:
        url = dpg.get_value(self.url_input).strip()
        if not is_stream_url(url):
            raise FrameSourceError(f"not a stream URL: {url!r} (expected http://HOST:PORT/PATH, rtsp://HOST/PATH, ...)")
        self.start_webcam(url)

    def _show_webcam_status(self, text: str, colour=theme.ERROR) -> None:
        dpg.set_value(self.webcam_status, text)
        dpg.configure_item(self.webcam_status, show=bool(text), color=colour if text else theme.TEXT_DIM)

    def _refresh_webcams(self) -> None:
        self._cameras = [*list_webcams(), *self.app.recent.remembered("stream")]
        labels = [_camera_label(spec) for spec in self._cameras]
        dpg.configure_item(self.device, items=labels)
        dpg.set_value(self.device, labels[0] if labels else "no camera found")

    # ------------------------------------------------------------------ video controls
    def _toggle_play(self) -> None:
        video = self.app.video
        if video is not None:
            video.set_paused(not video.paused)

    def _loop_changed(self, sender, value: bool) -> None:
        if self.app.video is not None:
            self.app.video.loop = value

    def _scrubbed(self, sender, index: int) -> None:
        if self.app.video is not None:
            self.app.video.seek(index)

    # ------------------------------------------------------------------ manual control
    def _slider_moved(self) -> None:
        if self.mode != "manual":
            self._leave_source(keep_video=True)
            self.set_mode("manual")
        self.app.invalidate()

    def _neutral(self) -> None:
        for slider in self.sliders.values():
            dpg.set_value(slider, 0.0)
        self.app.invalidate()

    def _recenter(self) -> None:
        self.app.session.recenter()

    # ------------------------------------------------------------------ per frame
    def animating(self) -> bool:
        """Whether the avatar moves by itself (it must be rendered every frame)."""
        return self.mode == "idle"

    def state_override(self):
        """The state to render instead of the driven one (idle or manual), or None."""
        if self.mode == "idle":
            return self.app.session.idle_state(time.perf_counter() - self._idle_started)
        if self.mode == "manual":
            return self.app.session.manual_state({name: dpg.get_value(s) for name, s in self.sliders.items()})
        return None

    @property
    def preview_image(self) -> np.ndarray:
        """[P, P, 4] float32 RGBA: the tracked face's preview on screen (zeros before one)."""
        return self._preview_buffer

    def show_driven(self, frame: DrivingUpdate) -> None:
        if frame.preview is not None:
            self._preview_buffer = np.ascontiguousarray(frame.preview, dtype=np.float32)
            dpg.set_value(self._preview_texture, self._preview_buffer)
        folder = self.folder
        if folder is not None:
            expressions = "FLAME codes" if folder.poses_expressions else "the source's (no FLAME model)"
            dpg.set_value(self.folder_text, f"{self._folder_info}\nframe {frame.position + 1} of {folder.frame_count}"
                          f"\nexpressions: {expressions}")
        video = self.app.video
        if video is not None:
            set_value_if_changed(self.scrub, frame.position)
            dpg.set_value(self.time_text, f"{frame.position / video.fps:5.1f} s / {video.frame_count / video.fps:.1f} s")

    def camera_event(self, event: DrivingEvent) -> None:
        """A live camera stalled (it is being reconnected) or is back: said in the webcam group."""
        self._show_webcam_status(event.message if event.kind == "stalled" else "", theme.WARNING)

    def driving_stopped(self, reason: str) -> None:
        """The driving source failed (the app has shown ``reason`` in a dialog and the log). A
        webcam's group stays open and says why, to pick another camera or try again; other
        sources give way to the idle animation."""
        self.app.session.stop_driving()
        if self.mode == "webcam":
            self._show_webcam_status(reason)
        else:
            self.set_mode("idle")

    def refresh(self) -> None:
        driver = self.app.session.driver
        if isinstance(driver, WebcamDriver) and (status := driver.status()) is not None:
            dpg.set_value(self.source_text, f"{_camera_label(driver.spec)}\n{status.describe()}")
        video = self.app.video
        if video is not None:
            label = "Play" if video.paused else "Pause"
            if dpg.get_item_label(self.play_button) != label:
                dpg.configure_item(self.play_button, label=label)

    def _refresh_recent(self) -> None:
        self._recent_paths = self.app.recent.get("video")
        dpg.configure_item(self.recent, items=[recent_label(path) for path in self._recent_paths])


def _camera_label(spec: int | str) -> str:
    """What the device picker shows for webcam ``spec`` or a stream URL (without its password)."""
    return f"Camera {spec}" if isinstance(spec, int) else shown_url(spec)
