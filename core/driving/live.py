"""Live cameras: a webcam by number or a network stream by URL, read on a thread of its own
that keeps only the newest frame, and reconnected when it stalls or closes.

The camera opens on the first read, on the reading thread: one that does not open is a
:class:`~core.errors.FrameSourceError` (within :data:`~core.tracking.sources.OPEN_TIMEOUT_S`
and a moment for a stream). Once it has delivered, a camera that stops (a stream without a
frame for :data:`~core.tracking.sources.READ_TIMEOUT_S`, a closed stream, an unplugged
webcam) is reopened again and again, :data:`RECONNECT_DELAYS_S` apart, until it delivers
again or, with ``give_up_after_s``, that long has passed. The reader hears ``STALLED`` when
it stops and ``RESUMED`` when it is back, once each, between frames.

A ``stamped`` camera's frames carry the corner code of :mod:`core.driving.frame_code` (the
loopback camera's): each frame's index and timestamp are then the code's index and send
time, so both travel with the frame through tracking, animation and rendering.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.driving.frame_code import read_code
from core.errors import FrameSourceError
from core.tracking.sources import CaptureThread, Frame, FrameSource, SourceEvent, camera_name, open_camera

#: Seconds between attempts to reopen a camera that stopped: the first at once, then
#: backing off to the last value, so a camera that comes back is found within that long.
RECONNECT_DELAYS_S = (0.0, 0.25, 0.5, 1.0)
#: Seconds a read waits for a frame before returning None.
POLL_S = 0.1
#: Seconds a stopping reader thread may take.
STOP_TIMEOUT_S = 0.5
#: Frames over which the camera's frame rate is measured.
RATE_WINDOW = 30
#: Frames of a ``stamped`` camera without a corner code, from its first, that mean it has none.
UNSTAMPED_LIMIT = 30


@dataclass(frozen=True)
class CameraStatus:
    """How a live camera is doing, for the UI.

    Attributes:
        resolution: (width, height) of its frames, None before the first.
        fps: frames per second arriving, measured over the last :data:`RATE_WINDOW` frames.
        dropped: frames that arrived and were dropped for a newer one before being read.
        stalled_s: seconds since it stopped delivering (it is being reconnected), None while it delivers.
    """

    resolution: tuple[int, int] | None
    fps: float
    dropped: int
    stalled_s: float | None

    def describe(self) -> str:
        """One line: ``640x480, 30 fps, 12 dropped``, or how long it has been stalled."""
        if self.stalled_s is not None:
            return f"no frames for {self.stalled_s:.0f} s: reconnecting"
        if self.resolution is None:
            return "waiting for the first frame"
        width, height = self.resolution
        return f"{width}x{height}, {self.fps:.0f} fps, {self.dropped} dropped"


class LiveCamera:
    """A webcam (``spec`` a number) or network stream (a URL) as a driving input (see the
    module docstring)."""

    resumable = False
    #: The rate of an MP4 made from a live camera (its frames have no fixed rate).
    fps = 25.0

    def __init__(self, spec: int | str, stamped: bool = False, give_up_after_s: float | None = None):
        self.spec, self.stamped = spec, stamped
        self.name = camera_name(spec)
        self._give_up_after_s = give_up_after_s
        self._source: Reconnecting | None = None
        self._capture: CaptureThread | None = None
        self.unstamped = 0  # frames of a stamped camera that came without a code (skipped)

    def read(self) -> Frame | SourceEvent | None:
        if self._capture is None:
            self._source = Reconnecting(self.spec, self._give_up_after_s)
            self._capture = CaptureThread(self._source, max_queued=1).start()
        item = self._capture.get(timeout=POLL_S)
        return self._stamped(item) if self.stamped and isinstance(item, Frame) else item

    def describe(self, event: SourceEvent) -> str:
        if event is SourceEvent.FAILED:
            error = self._capture.error if self._capture is not None else None
            return f"reading {self.name} failed: {error}"
        if event is SourceEvent.STALLED:
            return f"{self.name} stopped delivering frames: reconnecting"
        if event is SourceEvent.RESUMED:
            return f"{self.name} is back"
        if self._give_up_after_s is not None:
            return f"{self.name} stopped delivering frames and did not come back within {self._give_up_after_s:g} s"
        return f"{self.name} stopped delivering frames (unplugged or in use)"

    def status(self) -> CameraStatus | None:
        """How the camera is doing; None before it opened."""
        if self._source is None or self._capture is None:
            return None
        return self._source.status(self._capture.dropped)

    def superseded(self) -> bool:
        return False

    def close(self) -> None:
        if self._capture is not None:
            self._source.interrupt()
            self._capture.stop(STOP_TIMEOUT_S)

    def _stamped(self, frame: Frame) -> Frame | None:
        """``frame`` with its corner code's index and send time; None (skipped) without a code.
        Raises FrameSourceError when none of the first :data:`UNSTAMPED_LIMIT` frames has one."""
        code = read_code(frame.rgb)
        if code is None:
            self.unstamped += 1
            if self.unstamped >= UNSTAMPED_LIMIT and self.unstamped == frame.index + 1:
                raise FrameSourceError(f"{self.name} carries no frame codes: measuring latency needs a stamped "
                                       "stream such as the loopback camera's ('omg-avatar loopback-camera')")
            return None
        return Frame(frame.rgb, code.index, code.sent_s)


class Reconnecting(FrameSource):
    """Camera ``spec``, reopened whenever it stops delivering (see the module docstring).
    Opens it at once: raises :class:`~core.errors.FrameSourceError` if it does not open.
    Frames are numbered on across reconnections."""

    def __init__(self, spec: int | str, give_up_after_s: float | None = None):
        self._spec, self.name = spec, camera_name(spec)
        self._give_up_after_s = give_up_after_s
        self._camera: FrameSource | None = open_camera(spec)
        self._interrupted = threading.Event()
        self._next_index = 0
        self._stalled_since: float | None = None
        self._resolution: tuple[int, int] | None = None
        self._arrivals: collections.deque[float] = collections.deque(maxlen=RATE_WINDOW)

    def read(self) -> Frame | SourceEvent:
        attempt = 0
        while not self._interrupted.is_set():
            if self._camera is None:
                if self._given_up():
                    return SourceEvent.DISCONNECTED
                if self._reopen(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]):
                    self._stalled_since = None
                    return SourceEvent.RESUMED
                attempt += 1
                continue
            item = self._camera.read()
            if isinstance(item, Frame):
                return self._numbered(item)
            self._camera.close()
            self._camera, self._stalled_since = None, time.monotonic()
            self._arrivals.clear()
            return SourceEvent.STALLED
        return SourceEvent.DISCONNECTED

    def status(self, dropped: int) -> CameraStatus:
        arrivals = list(self._arrivals)
        fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 and arrivals[-1] > arrivals[0] else 0.0
        stalled = None if self._stalled_since is None else time.monotonic() - self._stalled_since
        return CameraStatus(self._resolution, fps, dropped, stalled)

    def interrupt(self) -> None:
        """Make a read that waits to reconnect return ``DISCONNECTED`` (from any thread)."""
        self._interrupted.set()

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None

    def _numbered(self, frame: Frame) -> Frame:
        self._arrivals.append(time.monotonic())
        self._resolution = (frame.rgb.shape[1], frame.rgb.shape[0])
        frame = Frame(frame.rgb, self._next_index, frame.timestamp_s)
        self._next_index += 1
        return frame

    def _reopen(self, delay_s: float) -> bool:
        """Wait ``delay_s``, then try to open the camera again; True if it opened."""
        if self._interrupted.wait(delay_s):
            return False
        try:
            self._camera = open_camera(self._spec)
        except FrameSourceError:
            return False  # still gone: the next attempt follows
        return True

    def _given_up(self) -> bool:
        return (self._give_up_after_s is not None and self._stalled_since is not None
                and time.monotonic() - self._stalled_since >= self._give_up_after_s)  # fmt: skip


def list_webcams() -> list[int]:
    """Webcam indices to offer: Linux lists its /dev/video* devices; elsewhere 0 to 3, unprobed
    (probing opens each camera, which takes seconds on some systems)."""
    if sys.platform.startswith("linux"):
        names = (path.name[len("video"):] for path in Path("/dev").glob("video*"))
        return sorted(int(name) for name in names if name.isdigit())
    return list(range(4))
