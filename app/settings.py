"""What the app remembers between runs: recently opened files, kept in a small JSON file.

The file lives in the user's configuration folder (``$XDG_CONFIG_HOME/omg-avatar`` or
``~/.config/omg-avatar``; ``%APPDATA%\\omg-avatar`` on Windows). A missing or damaged
file is an empty history, never an error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from core.errors import OutputPathError
from core.session import write_json_atomic

#: Entries kept per kind of file.
RECENT_LIMIT = 8


def default_settings_dir() -> Path:
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "omg-avatar"
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "omg-avatar"


class RecentFiles:
    """Recently used paths per kind ("photo", "video", "avatar"), and other entries such as
    stream URLs ("stream"), newest first."""

    def __init__(self, folder: Path | None = None):
        self.path = (folder or default_settings_dir()) / "recent.json"
        try:
            data = json.loads(self.path.read_text())
            self._entries = {str(k): [str(p) for p in v] for k, v in data.items() if isinstance(v, list)}
        except (OSError, ValueError, AttributeError):
            self._entries = {}

    def get(self, kind: str) -> list[str]:
        """The paths of ``kind`` that still exist, newest first."""
        return [path for path in self._entries.get(kind, []) if Path(path).exists()]

    def add(self, kind: str, path: str | Path) -> None:
        self.remember(kind, str(Path(path).resolve()))

    def remembered(self, kind: str) -> list[str]:
        """The entries of ``kind``, newest first (paths whether or not they still exist)."""
        return list(self._entries.get(kind, []))

    def remember(self, kind: str, entry: str) -> None:
        """Put ``entry`` first among those of ``kind`` and save the history."""
        entries = [entry] + [e for e in self._entries.get(kind, []) if e != entry]
        self._entries[kind] = entries[:RECENT_LIMIT]
        try:
            write_json_atomic(self.path, self._entries)
        except OutputPathError:
            pass  # a read-only home loses the history, nothing else
