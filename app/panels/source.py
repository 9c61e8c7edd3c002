"""The avatar panel: photo (file dialog, recent files, demo), reconstruction method (with
the network method's file pickers when it is chosen), progress and cancel, and the
avatar's .omg file."""

from __future__ import annotations

import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from app import theme
from app.panels.widgets import heading, recent_label, set_enabled, tooltip
from core.session import NETWORK_METHOD, ReconstructionJob

METHOD_HELP = {
    "training-free": "Works on any machine without model files: MediaPipe's face mesh gives the head "
    "geometry, the photo gives the colours, subdivision gives the levels of detail.",
    "network": "The released OMG-Avatar network; needs the release's checkpoint and FLAME files (in models/ "
    "by default, or chosen below) and DINOv2 weights when the checkpoint lacks them.",
}
#: The network method's files: (NetworkFiles field and file-dialog kind, button label).
NETWORK_FILES = (("checkpoint", "Checkpoint..."), ("flame", "FLAME model..."), ("dinov2", "DINOv2 weights..."))
#: What each network file is and where it goes by default (under the models folder).
NETWORK_FILE_HELP = {
    "checkpoint": "The network's weights: the release's omg_ckpt.pt (github.com/JianqiangRen/OMG-Avatar) or "
    "ours (.safetensors). Default place: models/checkpoints/.",
    "flame": "FLAME as the release's resources give it: FLAME_with_eye.pt, with head_template_mesh.obj and "
    "FLAME_masks.pkl beside it. Default place: models/flame/.",
    "dinov2": "Meta's DINOv2 ViT-B/14 weights (dinov2_vitb14_pretrain.pth), needed only when the checkpoint "
    "lacks them. Default place: models/dinov2/.",
}
#: Seconds between checks of the network files on disk while their pickers are shown.
FILE_CHECK_INTERVAL_S = 1.0


class SourcePanel:
    def __init__(self, app):
        self.app = app
        self._recent_paths: list[str] = []
        self._files_checked = 0.0
        with dpg.collapsing_header(label="Avatar", default_open=True):
            heading("Reconstruction method")
            methods = app.session.methods()
            self.method = dpg.add_combo(methods, default_value=app.method, width=-1, callback=self._method_chosen)
            tooltip(self.method, "\n\n".join(f"{m}: {METHOD_HELP.get(m, '')}" for m in methods))
            with dpg.group(show=app.method == NETWORK_METHOD) as self.network_group:
                self.file_labels, self._file_tips = {}, {}
                for kind, label in NETWORK_FILES:
                    dpg.add_button(label=label, width=170, callback=self._ask_network_file, user_data=kind)
                    self.file_labels[kind] = dpg.add_text("", color=theme.TEXT_DIM, indent=12)
                    tip = tooltip(self.file_labels[kind], NETWORK_FILE_HELP[kind])
                    self._file_tips[kind] = dpg.get_item_children(tip, 1)[0]
            with dpg.group(horizontal=True):
                self.open_button = dpg.add_button(label="Open photo...", width=170, callback=self.ask_photo)
                self.demo_button = dpg.add_button(label="Demo portrait", width=-1,
                                                  callback=lambda: app.open_photo(None))
            tooltip(self.demo_button, "scikit-image's astronaut (NASA, public domain)")
            self.recent = dpg.add_combo([], label="", width=-1, no_preview=False,
                                        default_value="Recent photos", callback=self._recent_chosen)
            with dpg.group(show=False) as self.progress_group:
                self.progress = dpg.add_progress_bar(width=-1, overlay="")
                self.cancel = dpg.add_button(label="Cancel", width=-1, callback=self._cancel)
            dpg.add_spacer(height=2)
            with dpg.group(horizontal=True):
                dpg.add_button(label="Open .omg...", width=170, callback=self.ask_avatar)
                self.save_button = dpg.add_button(label="Save .omg...", width=-1, callback=self.ask_save_avatar)
            self.info = dpg.add_text("No avatar yet", color=theme.TEXT_DIM, wrap=SIDEBAR_TEXT_WRAP)
            dpg.add_spacer(height=4)
        self._refresh_recent()
        self._refresh_network_files()

    # ------------------------------------------------------------------ actions
    def _method_chosen(self, sender, method: str) -> None:
        self.app.method = method
        dpg.configure_item(self.network_group, show=method == NETWORK_METHOD)
        self._refresh_network_files()

    def _ask_network_file(self, sender, app_data, kind: str) -> None:
        self.app.dialogs.ask_file(kind, lambda path: self.set_network_file(kind, path))

    def set_network_file(self, kind: str, path: Path) -> None:
        """Use ``path`` as the network method's ``kind`` file (see :meth:`Session.set_network_file`)."""
        self.app.session.set_network_file(kind, path)
        self._refresh_network_files()

    def ask_photo(self) -> None:
        self.app.dialogs.ask_file("photo", self._photo_chosen)

    def ask_avatar(self) -> None:
        self.app.dialogs.ask_file("avatar", self.app.open_avatar)

    def ask_save_avatar(self) -> None:
        name = f"{Path(self.app.session.avatar_name).stem or 'avatar'}.omg"
        self.app.dialogs.ask_file("avatar_save", self.app.save_avatar, default_name=name)

    def _photo_chosen(self, path: Path) -> None:
        self.app.open_photo(path)
        self._refresh_recent()

    def _recent_chosen(self, sender, label: str) -> None:
        labels = [recent_label(path) for path in self._recent_paths]
        if label in labels:
            self.app.open_photo(Path(self._recent_paths[labels.index(label)]))
        dpg.set_value(self.recent, "Recent photos")

    def _cancel(self) -> None:
        if self.app.job is not None:
            self.app.job.cancel()

    # ------------------------------------------------------------------ updates
    def _refresh_recent(self) -> None:
        self._recent_paths = self.app.recent.get("photo")
        dpg.configure_item(self.recent, items=[recent_label(path) for path in self._recent_paths])
        set_enabled(self.recent, bool(self._recent_paths))

    def _refresh_network_files(self) -> None:
        """Each network file's name, whether it was chosen or is the default, and whether it
        is there (a missing checkpoint or FLAME file in the warning colour; DINOv2's is
        optional); its full path and what it is in the tooltip."""
        session = self.app.session
        in_use, chosen = session.network_files_in_use(), session.network_files
        for kind, _ in NETWORK_FILES:
            path = getattr(in_use, kind)
            note, colour = "chosen" if getattr(chosen, kind) else "default", theme.TEXT_DIM
            if not path.is_file() and kind == "dinov2":
                note += ", absent: optional"
            elif not path.is_file():
                note, colour = f"{note}, missing", theme.WARNING
            dpg.set_value(self.file_labels[kind], f"{path.name} ({note})")
            dpg.configure_item(self.file_labels[kind], color=colour)
            dpg.set_value(self._file_tips[kind], f"{path}\n\n{NETWORK_FILE_HELP[kind]}")
        self._files_checked = time.monotonic()

    def avatar_changed(self) -> None:
        session = self.app.session
        counts = " / ".join(f"{count:,}" for count in session.lod_counts)
        dpg.set_value(self.info, f"{session.avatar_name}\n{counts} Gaussians (Sub#0 to Sub#{len(session.lod_counts) - 1})")

    def refresh(self, job: ReconstructionJob | None) -> None:
        if self.app.method == NETWORK_METHOD and time.monotonic() - self._files_checked > FILE_CHECK_INTERVAL_S:
            self._refresh_network_files()  # the user may have put the files in place meanwhile
        busy = job is not None
        if dpg.is_item_shown(self.progress_group) != busy:
            dpg.configure_item(self.progress_group, show=busy)
        if busy:
            dpg.set_value(self.progress, job.progress)
            dpg.configure_item(self.progress, overlay=f"{job.message} ({100 * job.progress:.0f}%)")
        set_enabled(self.save_button, self.app.session.avatar is not None)


#: Wrap width of the info line, pixels.
SIDEBAR_TEXT_WRAP = 320
