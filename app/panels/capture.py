"""The capture panel: screenshot, MP4 recording with its progress, PLY export, and the
presenter window."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

from app import theme
from app.panels.widgets import set_enabled, tooltip


class CapturePanel:
    def __init__(self, app):
        self.app = app
        with dpg.collapsing_header(label="Capture", default_open=True):
            with dpg.group(horizontal=True):
                self.screenshot_button = dpg.add_button(label="Screenshot...", width=170,
                                                        callback=self.ask_screenshot)
                self.ply_button = dpg.add_button(label="Export PLY...", width=-1, callback=self.ask_ply)
            tooltip(self.ply_button, "The current level of detail in the pose shown, as a standard "
                    "3D Gaussian Splatting PLY file.")
            with dpg.group(horizontal=True):
                self.record_button = dpg.add_button(label="Record MP4...", width=170, callback=self._toggle_recording)
                self.record_text = dpg.add_text("", color=theme.ERROR)
            self.presenter_box = dpg.add_checkbox(label="Presenter window", callback=self._presenter_toggled)
            tooltip(self.presenter_box, "A separate window that shows only the avatar, for screen capture "
                    "by meeting or streaming software.")
            dpg.add_spacer(height=4)

    def ask_screenshot(self) -> None:
        self.app.dialogs.ask_file("screenshot", self.app.screenshot, default_name=self._name("png"))

    def ask_ply(self) -> None:
        self.app.dialogs.ask_file("ply", self.app.export_ply, default_name=self._name("ply"))

    def _toggle_recording(self) -> None:
        if self.app.recorder is not None:
            self.app.stop_recording()
        else:
            self.app.dialogs.ask_file("recording", self.app.start_recording, default_name=self._name("mp4"))

    def _presenter_toggled(self) -> None:
        self.app.toggle_presenter()

    def _name(self, suffix: str) -> str:
        return f"{Path(self.app.session.avatar_name).stem or 'avatar'}.{suffix}"

    def refresh(self) -> None:
        has_avatar = self.app.session.avatar is not None
        for button in (self.screenshot_button, self.ply_button, self.record_button):
            set_enabled(button, has_avatar)
        recorder = self.app.recorder
        label = "Stop recording" if recorder is not None else "Record MP4..."
        if dpg.get_item_label(self.record_button) != label:
            dpg.configure_item(self.record_button, label=label)
        dpg.set_value(self.record_text, f"REC {recorder.seconds:5.1f} s" if recorder is not None else "")
        if dpg.get_value(self.presenter_box) != self.app.presenter.is_open:
            dpg.set_value(self.presenter_box, self.app.presenter.is_open)
