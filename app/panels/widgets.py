"""Small helpers the panels share."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

from app import theme


def tooltip(item: int | str, text: str) -> int:
    """Attach a hover tooltip with ``text`` to ``item``."""
    with dpg.tooltip(item) as tip:
        dpg.add_text(text, wrap=320)
    return tip


def heading(text: str) -> int:
    """A dim caption above a group of controls."""
    return dpg.add_text(text, color=theme.TEXT_DIM)


def set_enabled(item: int | str, enabled: bool) -> None:
    if dpg.get_item_configuration(item).get("enabled", True) != enabled:
        dpg.configure_item(item, enabled=enabled)


def set_value_if_changed(item: int | str, value) -> None:
    """Update a widget unless it already shows ``value`` or the user is dragging it."""
    if dpg.get_value(item) != value and not dpg.is_item_active(item):
        dpg.set_value(item, value)


def recent_label(path: str) -> str:
    """A recent-file entry: the name, then its folder."""
    return f"{Path(path).name}   ({Path(path).parent})"
