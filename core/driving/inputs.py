"""Driving inputs: where the per-frame path's frames come from.

An input's ``read()`` returns the next :class:`~core.tracking.sources.Frame`, a
:class:`~core.tracking.sources.SourceEvent` when the input has ended or failed, or None
when there is nothing to track just now (a webcam frame has not come yet, a paused video,
a frame dropped to keep real time). :meth:`describe` words an event for the user, and
``resumable`` says whether the input can go on after ``ENDED`` (a paused video that can be
played or sought again) or is finished.

* :class:`VideoPlayback`: a video file, every frame in order (offline runs, benchmarks) or
  in real time (dropping frames that are late); pause, seek and loop are safe to call
  from any thread.
* :class:`~core.driving.live.LiveCamera`: a webcam or network stream read on a thread that
  keeps only the newest frame, so a slow consumer drops camera frames instead of lagging
  behind; it reconnects a camera that stalls.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.tracking.sources import Frame, SourceEvent, VideoFileSource

#: Seconds a read waits while paused before returning None.
POLL_S = 0.1


class DrivingInput(Protocol):
    """What the per-frame path reads (see the module docstring)."""

    name: str
    fps: float
    resumable: bool

    def read(self) -> Frame | SourceEvent | None: ...

    def describe(self, event: SourceEvent) -> str: ...

    def superseded(self) -> bool:
        """Whether the frame read last should not be shown (a seek came meanwhile)."""
        ...

    def close(self) -> None: ...


class VideoPlayback:
    """A video file played every frame in order, or in ``realtime`` (dropping late frames).

    At its end it loops when :attr:`loop` is set; otherwise it reports ``ENDED`` and, when
    ``hold_at_end``, rewinds and pauses (so it can be played again: ``resumable``), else is
    finished. Raises :class:`~core.errors.FrameSourceError` for a file it cannot open.
    """

    def __init__(self, path: str | Path, realtime: bool = False, loop: bool = False, hold_at_end: bool = False):
        self.path, self.name = Path(path), Path(path).name
        self._source = VideoFileSource(self.path)
        self.fps = self._source.fps
        self.frame_count = _video_frame_count(self.path)
        self.realtime, self.loop, self.resumable = realtime, loop, hold_at_end
        self._paused = False
        self._seek_to: int | None = None
        self._wake = threading.Event()  # a pause, seek or close wakes a waiting read
        self._closing = threading.Event()
        self._next_index = 0
        self._clock: tuple[float, float] | None = None  # (monotonic time, video time) at a restart

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._clock = None
        self._wake.set()

    def seek(self, index: int) -> None:
        """Show frame ``index`` next (also while paused)."""
        self._seek_to = int(np.clip(index, 0, max(self.frame_count - 1, 0)))
        self._wake.set()

    def superseded(self) -> bool:
        return self._seek_to is not None

    def read(self) -> Frame | SourceEvent | None:
        seek_to, self._seek_to = self._seek_to, None
        if seek_to is not None:
            self._move_to(seek_to)
        elif self._paused:
            self._wake.wait(POLL_S)
            self._wake.clear()
            return None
        frame = self._source.read()
        if not isinstance(frame, Frame):
            if self._next_index == 0:
                return SourceEvent.FAILED  # not a single frame
            if not (self.loop or self.resumable):
                return SourceEvent.ENDED
            self._move_to(0)
            if not self.loop:
                self._paused = True
                return SourceEvent.ENDED
            frame = self._source.read()
            if not isinstance(frame, Frame):
                return SourceEvent.FAILED
        self._next_index = frame.index + 1
        if seek_to is None and self.realtime and not self._wait_until_due(frame):
            return None  # behind: this frame is dropped
        return frame

    def describe(self, event: SourceEvent) -> str:
        return f"{self.name} has no frames" if event is SourceEvent.FAILED else f"{self.name} ended"

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._source.close()

    def _wait_until_due(self, frame: Frame) -> bool:
        """Sleep until ``frame`` is due in real time; False if it is already a frame late."""
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, frame.timestamp_s)
        started, video_start = self._clock
        due = started + frame.timestamp_s - video_start
        if now > due + 1.0 / self.fps:
            return False
        if due > now:
            self._closing.wait(due - now)
        return True

    def _move_to(self, index: int) -> None:
        """Position the source so that the next read returns frame ``index``."""
        if index < self._next_index:
            self._source.close()
            self._source = VideoFileSource(self.path)
            self._next_index = 0
        while self._next_index < index and isinstance(self._source.read(), Frame):
            self._next_index += 1
        self._clock = None


def _video_frame_count(path: Path) -> int:
    """Frames in a video file as its container states them (0 if unknown)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()
