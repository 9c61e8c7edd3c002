"""Modal message dialogs and the file dialogs the panels open.

Errors never end the app: :class:`Dialogs.error` shows the one-line message of an
:class:`~core.errors.OmgError` (or of an unexpected exception) in a modal window that the
user dismisses. File dialogs are created once per purpose and reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import dearpygui.dearpygui as dpg

from app import theme
from core.errors import ConfigError, FrameSourceError, InputImageError, ModelFileError, NoFaceError, OmgError

log = logging.getLogger(__name__)

DIALOG_WIDTH = 460

#: File kinds: (dialog title, filter name, extensions; the first is the default for saving).
FILE_KINDS = {
    "photo": ("Open a portrait photo", "Images", (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")),
    "video": ("Open a driving video", "Videos", (".mp4", ".mov", ".avi", ".mkv", ".webm")),
    "avatar": ("Open an avatar", "Avatars", (".omg",)),
    "avatar_save": ("Save the avatar", "Avatars", (".omg",)),
    "screenshot": ("Save a screenshot", "PNG images", (".png",)),
    "recording": ("Record the view to a video", "MP4 videos", (".mp4",)),
    "ply": ("Export Gaussians as PLY", "PLY files", (".ply",)),
    "checkpoint": ("Choose the network checkpoint", "Checkpoints", (".pt", ".safetensors")),
    "flame": ("Choose the FLAME model", "FLAME models", (".pt", ".pkl", ".npz")),
    "dinov2": ("Choose the DINOv2 weights", "Weights", (".pth", ".safetensors", ".bin")),
    "driver_folder": ("Choose a tracked driver folder (with smoothed.pkl or optim.pkl)", "", ()),
}
SAVING_KINDS = {"avatar_save", "screenshot", "recording", "ply"}
#: Kinds whose dialog picks a folder, not a file.
FOLDER_KINDS = {"driver_folder"}

#: Dialog titles per kind of error (the first matching class wins).
ERROR_TITLES = (
    (NoFaceError, "No face found"),
    (InputImageError, "Cannot use this image"),
    (FrameSourceError, "Cannot open the video source"),
    (ModelFileError, "A model file is missing"),
    (ConfigError, "Configuration problem"),
    (OmgError, "Cannot do that"),
)


def sentence(message: str) -> str:
    """A one-line error as a sentence: capitalised and ended (core's are lower case for the CLI)."""
    message = message.strip()
    if not message:
        return message
    return message[0].upper() + message[1:] + ("" if message[-1] in ".!?" else ".")


def error_title(exc: Exception) -> str:
    """A dialog title for ``exc``; errors that are not :class:`OmgError` are bugs."""
    return next((title for kind, title in ERROR_TITLES if isinstance(exc, kind)), "Unexpected error")


class Dialogs:
    """Message boxes and file pickers; all calls happen on the UI thread."""

    def __init__(self, fonts: theme.Fonts):
        self._fonts = fonts
        self._file_dialogs: dict[str, int] = {}
        self._file_callbacks: dict[str, Callable[[Path], None]] = {}
        self.shown: list[tuple[str, str]] = []  # (title, message) of every dialog shown
        self._open: dict[int, tuple[str, str]] = {}  # dialog window -> (title, message)

    # ------------------------------------------------------------------ messages
    def error(self, title: str, message: str) -> None:
        log.warning("%s: %s", title, message)
        self._message(title, message, theme.ERROR)

    def info(self, title: str, message: str) -> None:
        self._message(title, message, theme.ACCENT)

    def open_dialogs(self) -> list[tuple[str, str]]:
        """(title, message) of the message dialogs on screen."""
        return list(self._open.values())

    def _message(self, title: str, message: str, colour: tuple[int, int, int]) -> None:
        if (title, message) in self._open.values():
            return  # the same dialog is already up (an error that repeats every frame)
        self.shown.append((title, message))
        width, height = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        with dpg.window(label=title, modal=True, no_title_bar=True, no_resize=True, width=DIALOG_WIDTH,
                        pos=(max(0, (width - DIALOG_WIDTH) // 2), max(0, height // 3))) as window:
            title_text = dpg.add_text(title, color=colour)
            if self._fonts.bold is not None:
                dpg.bind_item_font(title_text, self._fonts.bold)
            dpg.add_text(sentence(message), wrap=DIALOG_WIDTH - 30)
            dpg.add_spacer(height=6)
            dpg.add_button(label="OK", width=90, callback=lambda: self._dismiss(window))
        self._open[window] = (title, message)

    def _dismiss(self, window: int) -> None:
        self._open.pop(window, None)
        dpg.delete_item(window)

    # ------------------------------------------------------------------ files
    def ask_file(self, kind: str, on_chosen: Callable[[Path], None], default_name: str = "") -> None:
        """Show the file dialog for ``kind`` (see :data:`FILE_KINDS`); ``on_chosen`` gets the path."""
        self._file_callbacks[kind] = on_chosen
        if kind not in self._file_dialogs:
            self._file_dialogs[kind] = self._make_file_dialog(kind)
        dialog = self._file_dialogs[kind]
        if default_name:
            dpg.configure_item(dialog, default_filename=Path(default_name).stem)
        dpg.show_item(dialog)

    def _make_file_dialog(self, kind: str) -> int:
        title, filter_name, extensions = FILE_KINDS[kind]
        width, height = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        with dpg.file_dialog(label=title, show=False, modal=True, width=min(900, width - 80),
                             height=min(560, height - 80), default_path=str(Path.cwd()), default_filename="",
                             directory_selector=kind in FOLDER_KINDS,
                             callback=lambda sender, data: self._chosen(kind, data)) as dialog:
            if extensions:
                dpg.add_file_extension(f"{filter_name}{{{','.join(extensions)}}}", color=theme.ACCENT)
            if kind not in SAVING_KINDS | FOLDER_KINDS:
                dpg.add_file_extension(".*")
        return dialog

    def _chosen(self, kind: str, data: dict) -> None:
        path = Path(data.get("file_path_name", ""))
        if not path.name:
            return
        extensions = FILE_KINDS[kind][2]
        if kind in SAVING_KINDS and path.suffix.lower() not in extensions:
            path = path.with_suffix(extensions[0])
        self._file_callbacks[kind](path)
