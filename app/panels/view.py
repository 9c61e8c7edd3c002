"""The view panel: level of detail (manual, auto, side by side), refiner, inspection mode,
camera presets and follow-head, and the renderer."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from app.panels.widgets import heading, set_enabled, set_value_if_changed, tooltip
from core.session import INSPECTION_MODES, RENDERER_CHOICES

CAMERA_BUTTON_WIDTH = 60
NO_REFINER = ("This avatar has no neural refiner (only the network method builds one), so the final "
              "image is the splatted colour.")
WITH_REFINER = ("On: the final image is the refiner's. Where it cannot keep up (a CPU), the big image is the newest "
                "refined frame and the framed inset the live coarse splat at full rate; the overlay shows what a "
                "refined frame costs. Off: the coarse RGB (the first 3 splatted channels) at full rate.")


class ViewPanel:
    def __init__(self, app):
        self.app = app
        self._lod_labels: list[str] = []
        self._renderer_choice = "auto"
        with dpg.collapsing_header(label="View", default_open=True):
            heading("Level of detail")
            self.lod_radio = dpg.add_radio_button(["Sub#0", "Sub#1", "Sub#2"], default_value="Sub#1",
                                                  callback=self._lod_chosen)
            with dpg.group(horizontal=True):
                self.auto_box = dpg.add_checkbox(label="Auto, target", callback=self._auto_changed)
                self.target = dpg.add_slider_int(min_value=10, max_value=60, default_value=30, width=-1,
                                                 format="%d FPS", callback=self._target_changed)
            tooltip(self.auto_box, "Picks the finest level of detail that keeps the frame rate at the target.")
            with dpg.group(horizontal=True):
                self.side_box = dpg.add_checkbox(label="Side by side with", callback=self._side_changed)
                self.compare = dpg.add_combo(["Sub#0", "Sub#1", "Sub#2"], default_value="Sub#0", width=-1,
                                             callback=self._compare_chosen)
            dpg.add_spacer(height=2)
            heading("Show")
            self.mode = dpg.add_combo(list(INSPECTION_MODES.values()), default_value=INSPECTION_MODES["final"],
                                      width=-1, callback=self._mode_chosen)
            self.refiner_box = dpg.add_checkbox(label="Neural refiner", enabled=False, callback=self._refiner_changed)
            self.refiner_text = dpg.get_item_children(tooltip(self.refiner_box, NO_REFINER), 1)[0]
            dpg.add_spacer(height=2)
            heading("Camera")
            with dpg.group(horizontal=True):
                for label, action in (("Reset", app.camera.reset), ("Front", lambda: app.camera.preset("front")),
                                      ("Left", lambda: app.camera.preset("left")),
                                      ("Right", lambda: app.camera.preset("right"))):
                    dpg.add_button(label=label, width=CAMERA_BUTTON_WIDTH, callback=self._camera_action,
                                   user_data=action)
            self.follow_box = dpg.add_checkbox(label="Follow head", callback=self._follow_changed)
            tooltip(self.follow_box, "Keep the head centred and frontal while the driver turns it.")
            with dpg.group(horizontal=True):
                dpg.add_text("Renderer")
                self.renderer = dpg.add_combo(list(RENDERER_CHOICES), default_value="auto", width=-1,
                                              callback=self._renderer_chosen)
            tooltip(self.renderer, "auto: gsplat on a CUDA GPU, else the CPU rasteriser.\n"
                    f"Available here: {', '.join(app.session.backends())}")
            dpg.add_spacer(height=4)

    # ------------------------------------------------------------------ callbacks
    def _refiner_changed(self, sender, value: bool) -> None:
        self.app.session.set_use_refiner(value)
        self.app.invalidate()

    def _lod_chosen(self, sender, label: str) -> None:
        self.app.view.lod = self._lod_labels.index(label) if label in self._lod_labels else 0
        self.app.view.auto_lod = False
        dpg.set_value(self.auto_box, False)
        self.app.invalidate()

    def _auto_changed(self, sender, value: bool) -> None:
        self.app.view.auto_lod = value

    def _target_changed(self, sender, value: int) -> None:
        self.app.view.target_fps = float(value)
        self.app.auto_lod.target_fps = float(value)

    def _side_changed(self, sender, value: bool) -> None:
        self.app.view.side_by_side = value
        self.app.invalidate()

    def _compare_chosen(self, sender, label: str) -> None:
        self.app.view.compare_lod = self._lod_labels.index(label) if label in self._lod_labels else 0
        self.app.invalidate()

    def _mode_chosen(self, sender, label: str) -> None:
        self.app.view.mode = next(key for key, value in INSPECTION_MODES.items() if value == label)
        self.app.invalidate()

    def _camera_action(self, sender, app_data, action) -> None:
        action()
        self.app.invalidate()

    def _follow_changed(self, sender, value: bool) -> None:
        self.app.view.follow_head = value
        self.app.invalidate()

    def _renderer_chosen(self, sender, name: str) -> None:
        try:
            self.app.session.set_backend(name)
            self._renderer_choice = name
        finally:
            dpg.set_value(self.renderer, self._renderer_choice)
            self.app.invalidate()

    # ------------------------------------------------------------------ updates
    def avatar_changed(self) -> None:
        counts = self.app.session.lod_counts
        self._lod_labels = [f"Sub#{lod}   {count:,} Gaussians" for lod, count in enumerate(counts)]
        dpg.configure_item(self.lod_radio, items=self._lod_labels)
        dpg.configure_item(self.compare, items=[f"Sub#{lod}" for lod in range(len(counts))])
        dpg.set_value(self.compare, f"Sub#{self.app.view.compare_lod}")
        session = self.app.session
        set_enabled(self.refiner_box, session.has_refiner)
        dpg.set_value(self.refiner_box, session.has_refiner and session.use_refiner)
        dpg.set_value(self.refiner_text, WITH_REFINER if session.has_refiner else NO_REFINER)

    def refresh(self) -> None:
        if self._lod_labels:
            set_value_if_changed(self.lod_radio, self._lod_labels[self.app.view.lod])
