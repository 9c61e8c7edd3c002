"""The app's look: a dark theme with one accent colour and a proportional font.

The font is DejaVu Sans from matplotlib's data folder (matplotlib is installed with
mediapipe); without it Dear PyGui's built-in font is used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dearpygui.dearpygui as dpg

BODY_FONT_SIZE = 16
OVERLAY_FONT_SIZE = 15

BACKGROUND = (24, 26, 31)
PANEL = (32, 35, 42)
FRAME = (45, 49, 58)
FRAME_HOVER = (58, 63, 75)
ACCENT = (86, 156, 214)
ACCENT_HOVER = (110, 176, 230)
ACCENT_ACTIVE = (66, 134, 196)
TEXT = (225, 228, 234)
TEXT_DIM = (150, 156, 168)
WARNING = (236, 176, 84)
ERROR = (232, 98, 92)
#: Behind the avatar (RGB 0..1, the render background). Black, like the window around the
#: view: Dear PyGui shows black where no window paints, and painting costs (see below).
VIEWPORT_BACKGROUND = (0.0, 0.0, 0.0)


def _font_file(name: str) -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / name
    return path if path.is_file() else None


class Fonts:
    """Fonts bound after ``dpg.create_context()``; None members mean Dear PyGui's default."""

    def __init__(self) -> None:
        self.body = self.bold = self.overlay = None
        regular, bold = _font_file("DejaVuSans.ttf"), _font_file("DejaVuSans-Bold.ttf")
        if regular is None:
            return
        with dpg.font_registry():
            self.body = dpg.add_font(str(regular), BODY_FONT_SIZE)
            self.overlay = dpg.add_font(str(regular), OVERLAY_FONT_SIZE)
            self.bold = dpg.add_font(str(bold or regular), BODY_FONT_SIZE + 1)
        dpg.bind_font(self.body)


def apply_theme() -> None:
    """Bind the global theme (colours, rounding, spacing)."""
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvAll):
            colours = {
                dpg.mvThemeCol_WindowBg: BACKGROUND,
                dpg.mvThemeCol_ChildBg: PANEL,
                dpg.mvThemeCol_PopupBg: PANEL,
                dpg.mvThemeCol_MenuBarBg: PANEL,
                dpg.mvThemeCol_FrameBg: FRAME,
                dpg.mvThemeCol_FrameBgHovered: FRAME_HOVER,
                dpg.mvThemeCol_FrameBgActive: FRAME_HOVER,
                dpg.mvThemeCol_Button: FRAME,
                dpg.mvThemeCol_ButtonHovered: FRAME_HOVER,
                dpg.mvThemeCol_ButtonActive: ACCENT_ACTIVE,
                dpg.mvThemeCol_Header: FRAME,
                dpg.mvThemeCol_HeaderHovered: FRAME_HOVER,
                dpg.mvThemeCol_HeaderActive: ACCENT_ACTIVE,
                dpg.mvThemeCol_CheckMark: ACCENT,
                dpg.mvThemeCol_SliderGrab: ACCENT,
                dpg.mvThemeCol_SliderGrabActive: ACCENT_HOVER,
                dpg.mvThemeCol_PlotHistogram: ACCENT,
                dpg.mvThemeCol_Text: TEXT,
                dpg.mvThemeCol_TextDisabled: TEXT_DIM,
                dpg.mvThemeCol_Border: (52, 56, 66),
                dpg.mvThemeCol_Separator: (52, 56, 66),
                dpg.mvThemeCol_TitleBg: PANEL,
                dpg.mvThemeCol_TitleBgActive: FRAME,
                dpg.mvThemeCol_Tab: FRAME,
                dpg.mvThemeCol_TabActive: ACCENT_ACTIVE,
                dpg.mvThemeCol_TabHovered: ACCENT_HOVER,
                dpg.mvThemeCol_ModalWindowDimBg: (0, 0, 0, 140),
            }
            for target, colour in colours.items():
                dpg.add_theme_color(target, colour)
            for target, value in {
                dpg.mvStyleVar_WindowRounding: 6,
                dpg.mvStyleVar_ChildRounding: 6,
                dpg.mvStyleVar_FrameRounding: 4,
                dpg.mvStyleVar_GrabRounding: 4,
                dpg.mvStyleVar_PopupRounding: 6,
                dpg.mvStyleVar_ScrollbarRounding: 6,
                dpg.mvStyleVar_TabRounding: 4,
                dpg.mvStyleVar_WindowBorderSize: 0,
                dpg.mvStyleVar_ChildBorderSize: 0,
            }.items():
                dpg.add_theme_style(target, value)
            for target, (x, y) in {
                dpg.mvStyleVar_WindowPadding: (12, 12),
                dpg.mvStyleVar_FramePadding: (8, 4),
                dpg.mvStyleVar_ItemSpacing: (8, 5),
                dpg.mvStyleVar_ItemInnerSpacing: (6, 4),
            }.items():
                dpg.add_theme_style(target, x, y)
        # Dear PyGui draws disabled widgets like enabled ones unless told otherwise.
        for kind in (dpg.mvButton, dpg.mvCheckbox, dpg.mvSliderFloat, dpg.mvSliderInt, dpg.mvCombo):
            with dpg.theme_component(kind, enabled_state=False):
                for target in (dpg.mvThemeCol_Button, dpg.mvThemeCol_ButtonHovered, dpg.mvThemeCol_ButtonActive,
                               dpg.mvThemeCol_FrameBg, dpg.mvThemeCol_FrameBgHovered):
                    dpg.add_theme_color(target, PANEL)
                for target in (dpg.mvThemeCol_Text, dpg.mvThemeCol_CheckMark, dpg.mvThemeCol_SliderGrab):
                    dpg.add_theme_color(target, TEXT_DIM)
    dpg.bind_theme(theme)


def transparent_theme() -> int:
    """For the main window's children (the sidebars, the view's area), which inherit it:
    unpainted, they show the viewport's black. Every painted window background costs a
    software renderer a pass over its pixels: 6 ms of a 17 ms frame at 1600x1000 under Xvfb;
    painted sidebars made the app driven live at Sub#1 (1280x800, 2 cores) show its frames
    12 ms later (measured)."""
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvAll):
            dpg.add_theme_color(dpg.mvThemeCol_WindowBg, (0, 0, 0, 0))
            dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (0, 0, 0, 0))
    return theme
