"""Driving from a tracked driver folder of the OMG-Avatar release (``smoothed.pkl`` /
``optim.pkl``, :mod:`core.driving.release_driver`): no tracker, the frames carry FLAME codes
and cameras.

The frames play in real time at the folder's rate (:func:`~core.driving.release_driver.driver_fps`:
its preview's, else 25 FPS) on a thread, looping like a video and dropping frames when
late. Each frame becomes a driving state (:func:`~core.driving.release_states.release_state`):
the head moves as the frame's camera sees it (the driver's absolute pose for an avatar whose
head space is FLAME's, a network one; the driver's motion since its first frame for a
training-free one), and the expression is the frame's FLAME codes when the avatar has a FLAME
rig with its model, else the avatar keeps its source expression.
A folder that cannot be read (missing files, a hostile pickle) raises
:class:`~core.errors.ModelFileError` before anything starts; an error while playing arrives
as a ``failed`` :class:`~core.driving.DrivingEvent`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

from core.avatar import Avatar
from core.driving import DrivingEvent
from core.driving.release_driver import ReleaseDriver, driver_fps, load_release_driver
from core.driving.release_states import release_state
from core.errors import OmgError
from core.session.driving import Driver, DrivingUpdate

log = logging.getLogger(__name__)

#: Seconds a stopping player may take.
STOP_TIMEOUT_S = 0.5


def drives_expressions(avatar: Avatar | None) -> bool:
    """Whether a driver folder's FLAME codes pose ``avatar``'s expression (a FLAME rig with its model)."""
    return avatar is not None and avatar.flame is not None and avatar.flame.model is not None


class FolderPlayback:
    """Turns a driver's frames into :class:`DrivingUpdate` s at ``fps`` on a thread, looping;
    only the newest waits to be taken. ``wake`` is set after every frame and event."""

    def __init__(self, driver: ReleaseDriver, fps: float, avatar: Avatar | None, wake: threading.Event | None):
        self.frames, self.fps = driver.frames, fps
        self._avatar = avatar
        self._wake = wake
        self._lock = threading.Lock()
        self._newest: DrivingUpdate | None = None
        self._events: list[DrivingEvent] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"driving {driver.file.parent.name}", daemon=True)

    def start(self) -> FolderPlayback:
        self._thread.start()
        return self

    def take(self) -> DrivingUpdate | None:
        with self._lock:
            newest, self._newest = self._newest, None
        return newest

    def events(self) -> list[DrivingEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    @property
    def avatar(self) -> Avatar | None:
        return self._avatar

    def set_avatar(self, avatar: Avatar | None) -> None:
        self._avatar = avatar

    def stop(self) -> bool:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = time.monotonic()
        played = 0  # frames since the start, looping included
        try:
            while not self._stopping.wait(max(0.0, started + played / self.fps - time.monotonic())):
                played = max(played, math.floor((time.monotonic() - started) * self.fps))  # drop late frames
                self._deliver(self._update(played % len(self.frames)))
                played += 1
        except Exception as exc:  # noqa: BLE001 - reported to the UI thread
            if not isinstance(exc, OmgError):
                log.exception("driving from a driver folder failed")
            self._report(DrivingEvent("failed", str(exc) or type(exc).__name__))

    def _update(self, index: int) -> DrivingUpdate:
        """Frame ``index`` for the current avatar (no state before there is one)."""
        avatar = self._avatar
        if avatar is None:
            return DrivingUpdate(None, None, None, index)
        state = release_state(self.frames[index], avatar, drives_expressions(avatar), first=self.frames[0])
        return DrivingUpdate(state, None, None, index)

    def _deliver(self, update: DrivingUpdate) -> None:
        with self._lock:
            self._newest = update
        if self._wake is not None:
            self._wake.set()

    def _report(self, event: DrivingEvent) -> None:
        with self._lock:
            self._events.append(event)
        if self._wake is not None:
            self._wake.set()


class ReleaseFolderDriver(Driver):
    """Plays a release driver folder (see the module docstring)."""

    def __init__(self, folder: str | Path, avatar: Avatar | None, wake: threading.Event | None = None):
        self.folder = Path(folder)
        driver = load_release_driver(self.folder)  # a bad folder fails here, in one line
        self.file, self.fps, self.frame_count = driver.file, driver_fps(self.folder), len(driver)
        self.playback = FolderPlayback(driver, self.fps, avatar, wake)
        super().__init__(f"{self.folder.name}/{driver.file.name}", self.playback)

    def set_avatar(self, avatar: Avatar | None) -> None:
        self.playback.set_avatar(avatar)

    @property
    def poses_expressions(self) -> bool:
        """Whether the frames' FLAME codes pose the avatar's expression (else only the head moves)."""
        return drives_expressions(self.playback.avatar)
