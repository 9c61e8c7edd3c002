"""The application: window layout, the per-frame loop, and the actions the panels trigger.

Everything here runs on the UI thread. Dear PyGui's callbacks are queued (manual callback
management) and run at the start of each frame by :meth:`App.step`, so every change of
state happens in one place and in order; a callback that raises shows a dialog and the
app goes on. Work that takes time runs elsewhere: reconstruction on its job's thread,
capture and tracking on the session's driver thread, encoding on the recorder's thread,
the presenter in its own process.

With the avatar's neural refiner on and too slow to keep up (a CPU: about 0.8 s a 512x512
frame), the view shows two streams and says which is which: the main image is the newest
refined frame (labelled "Refined"), and a framed inset in its corner shows the live coarse
splat at full rate (labelled "Live: coarse splat"), so the motion stays visible while the
refined image updates as often as the CPU allows. A coarse frame never replaces a refined one
in the same place (so frames of different moments never alternate there); until the first
refined frame arrives, the main image is the coarse stream, labelled as such. The presenter
and recordings get the main image. Where the refiner keeps up (gsplat on CUDA), frames come
refined from the render thread and are shown as they are.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app import theme
from app.auto_lod import AutoLod
from app.dialogs import Dialogs, error_title
from app.orbit_camera import OrbitCamera, OrbitHome
from app.panels.capture import CapturePanel
from app.panels.driving import DrivingPanel
from app.panels.source import SourcePanel
from app.panels.view import ViewPanel
from app.presenter import Presenter
from app.process_age import process_age_s
from app.recorder import Recorder
from app.settings import RecentFiles
from app.viewport import Viewport
from core.errors import OmgError
from core.session import (
    LatencyMeter,
    ReconstructionJob,
    RefinedFrame,
    RenderedFrame,
    Session,
    VideoDriver,
    View,
    write_png_atomic,
)

log = logging.getLogger(__name__)

#: Seconds closing the app waits for a cancelled reconstruction to let go of its graphs.
JOB_STOP_TIMEOUT_S = 10.0

TITLE = "OMG-Avatar"
LEFT_SIDEBAR_WIDTH = 360
RIGHT_SIDEBAR_WIDTH = 300
STATUS_HEIGHT = 26
#: The window is drawn whenever a new image arrives, and otherwise at least this often (for
#: input), or every STREAMING_REFRESH_S seconds while images keep arriving.
UI_REFRESH_FPS = 30.0
STREAMING_REFRESH_S = 0.1
#: Seconds between overlay refreshes (figures that change every frame are unreadable).
OVERLAY_INTERVAL_S = 0.25
#: Labels of the two streams while the refiner runs on its worker (see the module docstring).
REFINED_LABEL, LIVE_LABEL, WAITING_LABEL = "Refined", "Live: coarse splat", "Coarse (refining...)"


@dataclass
class ViewSettings:
    """How the avatar is shown; the panels edit it, :meth:`App.views` reads it."""

    lod: int = 1
    auto_lod: bool = False
    target_fps: float = 30.0
    side_by_side: bool = False
    compare_lod: int = 0
    mode: str = "final"
    follow_head: bool = False


class App:
    """The OMG-Avatar desktop window."""

    def __init__(self, session: Session, settings_dir: Path | None = None, method: str | None = None):
        self.session = session
        self.recent = RecentFiles(settings_dir)
        self.method = method or session.methods()[0]
        self.view = ViewSettings()
        self.camera = OrbitCamera(OrbitHome((0.0, 0.0, 0.0), 0.0, 0.0, session.config.camera.distance,
                                            session.config.camera.focal_normalized))
        self.auto_lod = AutoLod([1])
        self.presenter = Presenter()
        self.recorder: Recorder | None = None
        self.job: ReconstructionJob | None = None
        self.frames = 0  # loop iterations
        self.avatar_frames = 0  # frames that showed the avatar
        self.first_avatar_frame_s: float | None = None  # seconds from the process's start
        self._dirty = True
        self.shown_lod = self.view.lod
        self.requested = self.shown_request = 0  # serial numbers of render requests
        self.refined_request = 0  # the serial of the refined frame on screen
        self._refined: RefinedFrame | None = None  # the main image while the coarse stream is in the insets
        self._coarse: RenderedFrame | None = None  # the newest coarse frame shown
        self._last_overlay = 0.0
        self._last_drawn = self._last_shown = 0.0
        self.latency: LatencyMeter | None = None  # set to measure a stamped stream's latency
        self._undrawn_source: tuple[int, float] | None = None  # the source frame of an image not drawn yet
        self._status = ""
        self._closed = False
        self._window_size = (0, 0)

    # ------------------------------------------------------------------ window
    def build(self, width: int = 1600, height: int = 1000) -> None:
        dpg.create_context()
        dpg.configure_app(manual_callback_management=True)
        self.fonts = theme.Fonts()
        theme.apply_theme()
        self.dialogs = Dialogs(self.fonts)
        # Not Dear PyGui's primary window: that one is painted all over on every frame whatever
        # its theme (7 ms of a software OpenGL's CPU per 1280x800 frame, measured), so an
        # undecorated, unpainted window is kept the viewport's size instead (_fill_viewport).
        with dpg.window(tag="main", pos=(0, 0), width=width, height=height, no_title_bar=True, no_move=True,
                        no_resize=True, no_collapse=True, no_scrollbar=True, no_background=True,
                        no_bring_to_front_on_focus=True) as self.window:
            with dpg.menu_bar():
                self._build_menus()
            with dpg.group(horizontal=True):
                with dpg.child_window(width=LEFT_SIDEBAR_WIDTH, height=-STATUS_HEIGHT):
                    self.source_panel = SourcePanel(self)
                    self.driving_panel = DrivingPanel(self)
                with dpg.child_window(width=-RIGHT_SIDEBAR_WIDTH - 8, height=-STATUS_HEIGHT,
                                      no_scrollbar=True) as self.viewport_area:
                    self.viewport = Viewport(self.viewport_area, self.session.config.model.render_size, self.fonts)
                with dpg.child_window(width=-1, height=-STATUS_HEIGHT):
                    self.view_panel = ViewPanel(self)
                    self.capture_panel = CapturePanel(self)
            with dpg.group(horizontal=True):
                self.status_text = dpg.add_text("", color=theme.TEXT_DIM)
                dpg.add_spacer(width=40)
                dpg.add_text(GESTURES_HINT, color=theme.TEXT_DIM)
        dpg.bind_item_theme(self.window, theme.transparent_theme())  # the sidebars and the view's area too
        dpg.create_viewport(title=TITLE, width=width, height=height, min_width=1000, min_height=640, vsync=False)
        dpg.setup_dearpygui()
        dpg.show_viewport()

    def _build_menus(self) -> None:
        with dpg.menu(label="File"):
            dpg.add_menu_item(label="Open photo...", callback=lambda: self.source_panel.ask_photo())
            dpg.add_menu_item(label="Open avatar (.omg)...", callback=lambda: self.source_panel.ask_avatar())
            dpg.add_menu_item(label="Save avatar (.omg)...", callback=lambda: self.source_panel.ask_save_avatar())
            dpg.add_separator()
            dpg.add_menu_item(label="Screenshot...", callback=lambda: self.capture_panel.ask_screenshot())
            dpg.add_menu_item(label="Export PLY...", callback=lambda: self.capture_panel.ask_ply())
            dpg.add_separator()
            dpg.add_menu_item(label="Quit", callback=lambda: dpg.stop_dearpygui())
        with dpg.menu(label="Window"):
            dpg.add_menu_item(label="Presenter window", callback=lambda: self.toggle_presenter())
        with dpg.menu(label="Help"):
            dpg.add_menu_item(label="Controls", callback=lambda: self.dialogs.info("Controls", CONTROLS_HELP))
            dpg.add_menu_item(label="About", callback=lambda: self.dialogs.info("About OMG-Avatar", ABOUT))

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Run until the window closes, then stop everything."""
        try:
            while dpg.is_dearpygui_running():
                self.step()
        finally:
            self.close()

    def step(self) -> None:
        """One turn of the loop: take what the workers finished, ask for what is needed next,
        and draw the window when a new image arrived or a refresh is due.

        Drawing is the expensive part on a software OpenGL driver (about 15 ms of both cores
        at 1600x1000), so the window is drawn once per new image, or at least
        :data:`UI_REFRESH_FPS` times a second for input, not once per event.
        """
        self._collect_reconstruction()
        self._collect_driving()
        shown = self._show_rendered()
        self._request_render()  # before drawing, so rendering overlaps the drawing
        now = time.perf_counter()
        if shown:
            self._last_shown = now
        if shown or now - self._last_drawn >= self._refresh_interval(now):
            self._draw(now)
            if self._dirty:  # input that arrived with this frame
                self._request_render()
        self.session.wait(max(0.0, self._last_drawn + self._refresh_interval(now) - time.perf_counter()))

    def _refresh_interval(self, now: float) -> float:
        """Seconds the window may go undrawn: while images keep arriving they refresh it."""
        images_arriving = now - self._last_shown < STREAMING_REFRESH_S
        return STREAMING_REFRESH_S if images_arriving else 1.0 / UI_REFRESH_FPS

    def _draw(self, now: float) -> None:
        """Handle the input of the last frame, lay out, and draw one frame of the window."""
        self._run_callbacks()
        if self.viewport.steer(self.camera):
            self._dirty = True
        self._fill_viewport()
        area = dpg.get_item_rect_size(self.viewport_area)
        self.viewport.fit(area[0] - 16, area[1] - 16)
        self._refresh_panels(now)
        dpg.render_dearpygui_frame()
        if self.latency is not None and self._undrawn_source is not None:
            self.latency.shown(*self._undrawn_source, group=self.shown_lod)  # on screen now
        self._undrawn_source = None
        self.frames += 1
        self._last_drawn = now

    def _fill_viewport(self) -> None:
        """Keep the main window the size of the viewport."""
        size = (dpg.get_viewport_client_width(), dpg.get_viewport_client_height())
        if size != self._window_size:
            self._window_size = size
            dpg.configure_item(self.window, width=size[0], height=size[1])

    def invalidate(self) -> None:
        """The view changed: render again on the next frame."""
        self._dirty = True

    def _run_callbacks(self) -> None:
        for job in dpg.get_callback_queue() or []:
            callback, arguments = job[0], job[1:]
            if callback is not None:
                parameters = len(inspect.signature(callback).parameters)
                self.guarded(callback, *arguments[:parameters])

    def guarded(self, action, *arguments) -> None:
        """Run a UI action; whatever it raises becomes a dialog, and the app goes on."""
        try:
            action(*arguments)
        except Exception as exc:  # noqa: BLE001 - every error becomes a dialog
            self.report(exc)

    def report(self, exc: Exception, title: str | None = None) -> None:
        """Show ``exc`` in a dialog; unexpected errors are logged with their traceback."""
        if not isinstance(exc, OmgError):
            log.error("unexpected error", exc_info=exc)
        self.dialogs.error(title or error_title(exc), str(exc) or type(exc).__name__)

    # ------------------------------------------------------------------ reconstruction
    def open_photo(self, path: Path | None) -> None:
        """Reconstruct from ``path`` (None: the demo portrait) in the background."""
        if self.job is not None and not self.job.done:
            self.job.cancel()
        if path is not None:
            self.recent.add("photo", path)
        self.job = self.session.reconstruct(path, self.method)
        self.set_status(f"Building an avatar from {self.job.name} ({self.method})")

    def open_avatar(self, path: Path) -> None:
        self.session.load_avatar(path)
        self.recent.add("avatar", path)
        self._avatar_changed()
        self.set_status(f"Opened {path.name}")

    def save_avatar(self, path: Path) -> None:
        self.session.save_avatar(path)
        self.recent.add("avatar", path)
        self.set_status(f"Saved {path}")

    def _collect_reconstruction(self) -> None:
        job = self.job
        if job is None or not job.done:
            return
        self.job = None
        if job.cancelled:
            self.set_status("Reconstruction cancelled")
        elif job.error is not None:
            self.report(job.error, title=f"Cannot build an avatar from {job.name}")
            self.set_status(f"No avatar from {job.name}")
        else:
            self.session.set_avatar(job.avatar, job.name)
            self._avatar_changed()
            self.set_status(f"Avatar from {job.name} built in {job.seconds:.1f} s")

    def _avatar_changed(self) -> None:
        target, yaw, pitch, distance, focal = self.session.home_orbit()
        self.camera.home = OrbitHome(tuple(target), yaw, pitch, distance, focal)
        self.camera.reset()
        counts = self.session.lod_counts
        self.auto_lod = AutoLod(counts, self.view.target_fps)
        self.view.lod = min(self.view.lod, len(counts) - 1)
        self.view.compare_lod = min(self.view.compare_lod, len(counts) - 1)
        self._refined = self._coarse = None
        self.source_panel.avatar_changed()
        self.view_panel.avatar_changed()
        self._dirty = True

    # ------------------------------------------------------------------ driving
    def _collect_driving(self) -> None:
        frame, events = self.session.poll()
        if frame is not None:
            if not self.session.renders_driven_frame(frame.position):
                self._dirty = True
            self.driving_panel.show_driven(frame)
        for event in events:
            if event.kind == "ended":
                self.set_status(event.message)
            elif event.kind in ("stalled", "resumed"):  # a live camera reconnects by itself: no dialog
                self.set_status(event.message)
                self.driving_panel.camera_event(event)
            else:
                self.dialogs.error("Driving stopped", event.message)
                self.driving_panel.driving_stopped(event.message)

    @property
    def video(self) -> VideoDriver | None:
        driver = self.session.driver
        return driver if isinstance(driver, VideoDriver) else None

    # ------------------------------------------------------------------ rendering
    def views(self) -> list[View]:
        """The views to render: one, or two in side-by-side mode."""
        size = self.viewport.render_size
        camera = self.camera.camera(size, size)
        lods = [self.view.lod] + ([self.view.compare_lod] if self.view.side_by_side else [])
        return [View(camera, lod, self.view.mode, self.view.follow_head, theme.VIEWPORT_BACKGROUND) for lod in lods]

    def _request_render(self) -> None:
        """Ask for a new image when the view changed or the avatar moves."""
        if self.session.avatar is None or not (self._dirty or self.driving_panel.animating()):
            return
        self._dirty = False
        self.requested = self.session.request_render(self.views(), self.driving_panel.state_override())

    def _show_rendered(self) -> bool:
        """Put the renderer's newest images on screen, coarse and refined (and the main ones
        into the presenter and recording); True if there were any."""
        coarse = self._show_coarse(self.session.rendered())
        refined = self._show_refined(self.session.refined())
        return coarse or refined

    def _show_coarse(self, frame: RenderedFrame | None) -> bool:
        """A frame from the render thread: the main images, or the insets while a refined frame
        is the main image (see the module docstring)."""
        if frame is None:
            return False
        if frame.error is not None:
            self.report(frame.error, title="Cannot render the avatar")
            return False
        images = list(frame.images)
        self._coarse = frame
        if frame.refining and self._refined is not None and len(self._refined.images) == len(images):
            self.viewport.show_insets(images, LIVE_LABEL)
        else:
            self._refined = None
            self.viewport.show(images, self._labels(frame.request.views, WAITING_LABEL if frame.refining else ""))
            self.viewport.show_insets(None)
            self._publish(images)
        self.shown_lod, self.shown_request = frame.request.views[0].lod, frame.request.serial
        self._undrawn_source = frame.request.driven_by
        self.session.frame_shown()
        self.avatar_frames += 1
        if self.first_avatar_frame_s is None:
            self.first_avatar_frame_s = process_age_s()
        if self.view.auto_lod:
            self._apply_auto_lod(frame.render_ms)
        return True

    def _show_refined(self, frame: RefinedFrame | None) -> bool:
        """A frame from the refiner worker: the main images, the newest coarse ones in the insets.
        Dropped when it no longer fits what is shown (another avatar, the refiner turned off,
        another number of views)."""
        if frame is None:
            return False
        if frame.error is not None:
            self.report(frame.error, title="Cannot refine the image")
            return False
        coarse = self._coarse
        if (frame.request.avatar is not self.session.avatar or coarse is None or not coarse.refining
                or len(coarse.images) != len(frame.images)):  # fmt: skip
            return False
        self._refined = frame
        self.viewport.show(list(frame.images), self._labels(frame.request.views, REFINED_LABEL))
        self.viewport.show_insets(list(coarse.images), LIVE_LABEL)
        self.refined_request = frame.request.serial
        self._publish(list(frame.images))
        return True

    def _labels(self, views: tuple[View, ...], kind: str) -> list[str]:
        """Labels under the images of ``views``: what they are (``kind``) and their levels of
        detail; none for a single plain image."""
        if len(views) == 1 and not kind:
            return []
        counts = self.session.lod_counts
        return [f"{kind}  Sub#{view.lod}  {counts[view.lod]:,} Gaussians".strip() for view in views]

    def _publish(self, images: list[np.ndarray]) -> None:
        """Send the shown images to the presenter window (all) and the recording (the first)."""
        if self.presenter.is_open:
            self.presenter.show(_bytes(np.concatenate(images, axis=1)))
        if self.recorder is not None:
            self.recorder.add(_bytes(images[0]))

    def _apply_auto_lod(self, render_ms: float) -> None:
        lod = self.auto_lod.update(self.view.lod, render_ms, time.perf_counter())
        if lod != self.view.lod:
            self.view.lod = lod
            self._dirty = True

    # ------------------------------------------------------------------ capture
    def screenshot(self, path: Path) -> None:
        """Save the shown avatar image (not the whole window) as a PNG."""
        write_png_atomic(path, _bytes(self.viewport.first_image()))
        self.set_status(f"Saved {path}")

    def start_recording(self, path: Path) -> None:
        """Record the (first) view to an MP4 until :meth:`stop_recording`."""
        size = self.viewport.render_size
        self.recorder = Recorder(path, size, size)
        self._dirty = True
        self.set_status(f"Recording to {path.name}")

    def stop_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            path = recorder.stop()
            self.set_status(f"Saved {recorder.seconds:.1f} s of video to {path}")

    def export_ply(self, path: Path) -> None:
        self.session.export_ply(path, self.view.lod)
        self.set_status(f"Exported Sub#{self.view.lod} to {path}")

    def toggle_presenter(self) -> None:
        if self.presenter.is_open:
            self.presenter.close()
        else:
            size = self.viewport.render_size
            self.presenter.open(size * (2 if self.view.side_by_side else 1), size)
            self._dirty = True

    # ------------------------------------------------------------------ status
    def set_status(self, text: str) -> None:
        self._status = text
        log.info(text)

    def _refresh_panels(self, now: float) -> None:
        job = self.job
        if job is not None:
            self.viewport.set_message(f"Building the avatar: {job.message}...")
        elif self.session.avatar is None:
            self.viewport.set_message("Open a portrait photo to build an avatar")
        else:
            self.viewport.set_message("")
        self.source_panel.refresh(job)
        self.driving_panel.refresh()
        self.capture_panel.refresh()
        self.view_panel.refresh()
        if now - self._last_overlay >= OVERLAY_INTERVAL_S:
            self._last_overlay = now
            self._refresh_overlay()
        dpg.set_value(self.status_text, self._status)

    def _refresh_overlay(self) -> None:
        if self.session.avatar is None:
            self.viewport.set_overlay(None)
            return
        figures = self.session.figures(self.view.lod)
        self.viewport.set_overlay(figures, f"Sub#{figures.lod}" + (" (auto)" if self.view.auto_lod else ""))

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Stop every thread and process the app started, then destroy the window."""
        if self._closed:
            return
        self._closed = True
        if self.job is not None:
            self.job.cancel()
            # A job still holding MediaPipe graphs when the process ends aborts it (SIGABRT
            # during C++ teardown): wait until it has seen the cancel and released them.
            if not self.job.wait(JOB_STOP_TIMEOUT_S):
                log.warning("the reconstruction did not stop within %.0f s", JOB_STOP_TIMEOUT_S)
        if self.recorder is not None:
            try:
                self.stop_recording()
            except OmgError as exc:
                log.warning("recording not saved: %s", exc)
        self.presenter.close()
        self.session.close()
        dpg.destroy_context()


def _bytes(image: np.ndarray) -> np.ndarray:
    """A [H, W, 3] float image in 0..1 as uint8."""
    return (image * 255.0 + 0.5).astype(np.uint8)


GESTURES_HINT = "View: left drag orbits, right drag pans, the wheel zooms, a double-click resets."
CONTROLS_HELP = (
    "Left drag: orbit around the head.  Right drag: pan.  Mouse wheel: zoom.  "
    "Double-click: back to the front view.\n\n"
    "Driving: choose a video file, a webcam or a driver folder tracked by the OMG-Avatar release; moving any "
    "manual slider takes over from them. Recenter takes the current face as the neutral one.\n\n"
    "Neural refiner on a CPU: the big image is the newest refined frame, the framed inset the live coarse splat."
)
ABOUT = (
    "OMG-Avatar desktop turns one portrait photo into an animatable 3D Gaussian head-and-shoulder "
    "avatar with several levels of detail, and drives it from a webcam or a video.\n\n"
    "It implements 'OMG-Avatar: One-shot Multi-LOD Gaussian Head Avatar' (Ren, Liu, Hoi). "
    "Demo portrait: scikit-image's astronaut (NASA, public domain)."
)
