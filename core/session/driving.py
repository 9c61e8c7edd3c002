"""Driving an avatar live: a worker thread reads a video or a webcam, tracks the face and
turns it into driving states; the UI thread takes the newest one and never waits.

Videos play in real time (dropping frames when the viewer falls behind) or, for
benchmarks, paced by the consumer (every frame, none dropped); they pause, loop and seek.
Webcams are read by core's capture thread, which keeps only the newest frame. Whatever
goes wrong on the worker arrives as a :class:`DriverEvent` for the UI to show.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.avatar import Animator, DrivingState
from core.config import Config
from core.errors import OmgError
from core.tracking.sources import CaptureThread, Frame, SourceEvent, VideoFileSource, WebcamSource
from core.tracking.tracker import TrackedFrame, Tracker

log = logging.getLogger(__name__)

#: Side of the driving preview image, pixels.
PREVIEW_SIZE = 256
#: Colour of the landmarks drawn on the preview (RGB).
LANDMARK_COLOUR = (120, 220, 255)
#: Seconds a stopping worker may take before the app gives up on it.
STOP_TIMEOUT_S = 0.5
#: Seconds the worker waits for a webcam frame or while paused before checking for news.
POLL_S = 0.1


@dataclass(frozen=True)
class DrivenFrame:
    """The newest result of a :class:`Driver`.

    Attributes:
        sequence: increases with every published frame.
        state: the avatar's driving state, None until a face has been seen.
        tracker_ms: milliseconds the tracker spent on the frame.
        preview: [P, P, 4] float32 RGBA crop with the landmarks drawn, None before a face.
        position: the frame's index in its source.
    """

    sequence: int
    state: DrivingState | None
    tracker_ms: float
    preview: np.ndarray | None
    position: int


@dataclass(frozen=True)
class DriverEvent:
    """Something the user should hear about: ``ended``, ``lost`` (webcam gone) or ``failed``."""

    kind: str
    message: str


class Driver:
    """Reads frames on a worker thread, tracks the face and drives the avatar's animator.

    Subclasses say where frames come from (:meth:`_next_frame`). The UI thread takes the
    newest result with :meth:`take` and never waits; ``paced_by_consumer`` makes the worker
    wait until its previous result was taken (for benchmarks: no frame is tracked for
    nothing, none is dropped).
    """

    def __init__(self, name: str, config: Config, animator: Animator | None, paced_by_consumer: bool = False):
        self.name = name
        self.wake: threading.Event | None = None  # set after each result (the session's wake-up call)
        self.paced_by_consumer = paced_by_consumer
        self._config = config
        self._animator = animator
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._taken = threading.Event()
        self._taken.set()
        self._latest: DrivenFrame | None = None
        self._taken_sequence = 0
        self._events: deque[DriverEvent] = deque()
        self._recenter = False
        self._smoothing_cutoff: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"driver {name}", daemon=True)

    def start(self) -> Driver:
        self._thread.start()
        return self

    # ------------------------------------------------------------------ UI thread
    def take(self) -> DrivenFrame | None:
        """The newest result if it is newer than the last one taken."""
        with self._lock:
            latest = self._latest
            if latest is None or latest.sequence == self._taken_sequence:
                return None
            self._taken_sequence = latest.sequence
        self._taken.set()
        return latest

    def events(self) -> list[DriverEvent]:
        with self._lock:
            events, self._events = list(self._events), deque()
        return events

    def set_animator(self, animator: Animator | None) -> None:
        with self._lock:
            self._animator = animator

    def recenter(self) -> None:
        """Take the next tracked face as the neutral one."""
        self._recenter = True

    def set_smoothing_cutoff(self, cutoff_hz: float) -> None:
        self._smoothing_cutoff = cutoff_hz

    def stop(self) -> bool:
        """Ask the worker to end and wait up to :data:`STOP_TIMEOUT_S`; True if it ended."""
        self._stop.set()
        self._taken.set()
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ worker thread
    def _next_frame(self) -> Frame | DriverEvent | None:
        """The next frame to track, an event that ends the source, or None (nothing yet)."""
        raise NotImplementedError

    def _superseded(self) -> bool:
        """Whether the frame just tracked should not be shown (e.g. a seek came meanwhile)."""
        return False

    def _close(self) -> None:
        """Release the source (worker thread, at the end)."""

    def _report(self, event: DriverEvent) -> None:
        with self._lock:
            self._events.append(event)

    def _run(self) -> None:
        sequence, state = 0, None
        try:
            with Tracker.from_config(self._config) as tracker:
                while not self._stop.is_set():
                    item = self._next_frame()
                    if item is None:
                        continue
                    if isinstance(item, DriverEvent):
                        self._report(item)
                        if item.kind != "ended":
                            return
                        continue
                    if self._smoothing_cutoff is not None:
                        tracker.smoother.min_cutoff = self._smoothing_cutoff
                    tracked = tracker.track(item)
                    with self._lock:
                        animator = self._animator
                    if tracked.tracked and animator is not None:
                        if self._recenter:
                            self._recenter = False
                            animator.recenter()
                        state = animator.drive(tracked)
                    if self.paced_by_consumer:
                        self._taken.wait()
                        if self._superseded():
                            continue  # not shown; the consumer still waits for a frame
                        self._taken.clear()
                    sequence += 1
                    frame = DrivenFrame(sequence, state, tracked.total_ms, _preview(tracked), item.index)
                    with self._lock:
                        self._latest = frame
                    if self.wake is not None:
                        self.wake.set()
        except OmgError as exc:
            self._report(DriverEvent("failed", str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug: shown as a dialog, the app goes on
            log.exception("driving from %s failed", self.name)
            self._report(DriverEvent("failed", f"driving from {self.name} failed unexpectedly: {exc}"))
        finally:
            self._close()


class VideoDriver(Driver):
    """Plays a video file: real time (dropping frames when behind) or paced by the consumer;
    pause, loop and seek are safe to call from the UI thread."""

    def __init__(self, path: Path, config: Config, animator: Animator | None, paced_by_consumer: bool = False):
        super().__init__(path.name, config, animator, paced_by_consumer)
        self.path = path
        self._source = VideoFileSource(path)  # raises FrameSourceError on a bad file, in the caller
        self.fps = self._source.fps
        self.frame_count = _video_frame_count(path)
        self.loop = True
        self._paused = False
        self._seek_to: int | None = None
        self._wake = threading.Event()
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

    def stop(self) -> bool:
        self._wake.set()
        return super().stop()

    def _next_frame(self) -> Frame | DriverEvent | None:
        seek_to, self._seek_to = self._seek_to, None
        if seek_to is not None:
            self._move_to(seek_to)
        elif self._paused:
            self._wake.wait(POLL_S)
            self._wake.clear()
            return None
        frame = self._source.read()
        if not isinstance(frame, Frame):
            self._move_to(0)
            if not self.loop:
                self._paused = True
                return DriverEvent("ended", f"{self.name} ended")
            frame = self._source.read()
            if not isinstance(frame, Frame):
                return DriverEvent("failed", f"{self.name} has no frames")
        self._next_index = frame.index + 1
        if seek_to is None and not self.paced_by_consumer and not self._wait_until_due(frame):
            return None  # behind: this frame is dropped
        return frame

    def _superseded(self) -> bool:
        return self._seek_to is not None

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
            self._stop.wait(due - now)
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

    def _close(self) -> None:
        self._source.close()


class WebcamDriver(Driver):
    """A webcam read by core's capture thread, which keeps only the newest frame."""

    def __init__(self, index: int, config: Config, animator: Animator | None):
        super().__init__(f"webcam {index}", config, animator)
        self.index = index
        self._capture: CaptureThread | None = None

    def _next_frame(self) -> Frame | DriverEvent | None:
        if self._capture is None:
            self._capture = CaptureThread(WebcamSource(self.index), max_queued=1).start()
        item = self._capture.get(timeout=POLL_S)
        if item is SourceEvent.DISCONNECTED:
            return DriverEvent("lost", f"{self.name} stopped delivering frames (unplugged or in use)")
        if item is SourceEvent.FAILED:
            return DriverEvent("failed", f"reading {self.name} failed: {self._capture.error}")
        return item

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.stop(STOP_TIMEOUT_S)


def _video_frame_count(path: Path) -> int:
    """Frames in a video file as its container states them (0 if unknown)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()


def list_webcams() -> list[int]:
    """Webcam indices to offer: Linux lists its /dev/video* devices; elsewhere 0 to 3, unprobed
    (probing opens each camera, which takes seconds on some systems)."""
    if sys.platform.startswith("linux"):
        names = (path.name[len("video"):] for path in Path("/dev").glob("video*"))
        return sorted(int(name) for name in names if name.isdigit())
    return list(range(4))


def _preview(tracked: TrackedFrame) -> np.ndarray | None:
    """The tracked crop at :data:`PREVIEW_SIZE` with its landmarks as dots, float32 RGBA."""
    if tracked.crop is None:
        return None
    image = cv2.resize(tracked.crop, (PREVIEW_SIZE, PREVIEW_SIZE), interpolation=cv2.INTER_AREA)
    if tracked.landmarks is not None:
        scale = PREVIEW_SIZE / tracked.crop.shape[0]
        x, y = np.clip((tracked.landmarks[:, :2] * scale).astype(np.int64), 0, PREVIEW_SIZE - 2).T
        for dx in (0, 1):  # 2x2 dots
            for dy in (0, 1):
                image[y + dy, x + dx] = LANDMARK_COLOUR
    rgba = np.empty((PREVIEW_SIZE, PREVIEW_SIZE, 4), np.float32)
    rgba[..., :3] = image * (1.0 / 255.0)
    rgba[..., 3] = 1.0
    return rgba
