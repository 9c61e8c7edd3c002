"""The presenter window, seen from the app: a child process fed through shared memory.

``open()`` starts :mod:`app.presenter_process` as a plain child process (it shares no
OpenGL or GLX state with Dear PyGui and imports only glfw and PyOpenGL, so it opens in a
fraction of a second), ``show(rgb)`` publishes a frame without ever waiting on it, and
``close()`` closes the child's standard input, which ends it. Closing the window by hand
ends the process too; ``is_open`` notices.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from app.shared_frame import SharedFrame

#: Seconds the app waits for the presenter to quit before killing it.
CLOSE_TIMEOUT_S = 0.5
#: In a bundle, the app's executable runs the presenter when given this first argument.
PRESENTER_ARGUMENT = "--presenter-window"
#: The bundled app's executable (see build_exe.spec), beside the command-line one.
BUNDLED_APP = "omg-avatar-app"


def presenter_command(shared_name: str, width: int, height: int) -> list[str]:
    """How to start the presenter: ``python -m app.presenter_process``, or in a bundle the
    app's executable with :data:`PRESENTER_ARGUMENT`."""
    arguments = [shared_name, str(width), str(height)]
    if getattr(sys, "frozen", False):
        executable = Path(sys.executable).with_name(BUNDLED_APP + Path(sys.executable).suffix)
        return [str(executable), PRESENTER_ARGUMENT, *arguments]
    return [sys.executable, "-m", "app.presenter_process", *arguments]


class Presenter:
    """A separate, clean window that shows only the avatar (for screen capture or streaming)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._shared: SharedFrame | None = None

    @property
    def is_open(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def open(self, width: int, height: int) -> None:
        if self.is_open:
            return
        self._release()
        self._shared = SharedFrame()
        self._process = subprocess.Popen(presenter_command(self._shared.name, width, height), stdin=subprocess.PIPE)

    def show(self, rgb: np.ndarray) -> None:
        """Publish [H, W, 3] uint8 ``rgb`` if the window is open."""
        if self._shared is not None and self.is_open:
            self._shared.write(rgb)

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()  # the presenter quits at the end of its input
            try:
                self._process.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(CLOSE_TIMEOUT_S)
        self._release()

    def _release(self) -> None:
        if self._shared is not None:
            self._shared.release()
        self._process, self._shared = None, None
