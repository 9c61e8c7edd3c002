"""Frame sources (webcam, network stream, video file, single image, image folder) and a capture thread.

A :class:`FrameSource` is read synchronously: ``read()`` returns the next :class:`Frame`
or, once there are no more, a :class:`SourceEvent` (and keeps returning it). Iterating a
source yields its frames and stops at the event. Offline work (``omg-avatar track``)
iterates a source directly and sees every frame.

Live work wraps a source in a :class:`CaptureThread`: a background thread reads frames
into a bounded queue that drops the oldest, so a slow consumer always gets the newest
frame; the end of a video or a vanished webcam arrives as a :class:`SourceEvent`, and
any error raised while reading arrives as ``SourceEvent.FAILED`` (never as an exception
escaping the thread).
"""

from __future__ import annotations

import abc
import collections
import enum
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import FrameSourceError, InputImageError
from core.tracking.photo import read_image
from core.tracking.stream_urls import is_stream_url, shown_url, why_stream_did_not_open

log = logging.getLogger(__name__)

# FFmpeg inside OpenCV prints its own lines (e.g. "moov atom not found") for files it cannot
# decode; we report those as one FrameSourceError line instead. Read when a capture opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# OpenCV's own warnings likewise ("can't open camera by index", "Stream timeout triggered"),
# which a camera being reconnected would print every second: errors only (LOG_LEVEL_ERROR,
# which the Python module does not name).
cv2.setLogLevel(2)

#: File suffixes read as still images (the rest are tried as videos).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Frame rate assumed where a source carries no timing (image folders, videos without one).
DEFAULT_FPS = 30.0
#: Seconds a stream may take to deliver its first frame when it opens.
OPEN_TIMEOUT_S = 3.5
#: Seconds without a frame after which a stream's read gives up: it stalled or closed.
READ_TIMEOUT_S = 1.5


@dataclass(frozen=True)
class Frame:
    """One frame of a source.

    Attributes:
        rgb: [H, W, 3] uint8 RGB image.
        index: 0-based position in the source.
        timestamp_s: seconds from the start of the source (video time for files), or
            for a live camera the wall-clock time (``time.time()``) it arrived.
    """

    rgb: np.ndarray
    index: int
    timestamp_s: float


class SourceEvent(enum.Enum):
    """Why a source has no more frames (a ``final`` event), or, for a live camera that
    reconnects, that its frames stopped or came back."""

    ENDED = "ended"  # a video, image or image folder is exhausted
    DISCONNECTED = "disconnected"  # a webcam or stream stopped delivering frames
    FAILED = "failed"  # reading raised an error (CaptureThread.error holds it)
    STALLED = "stalled"  # a live camera stopped delivering; it is being reconnected
    RESUMED = "resumed"  # a stalled live camera delivers again

    @property
    def final(self) -> bool:
        """Whether the source has ended (no frames follow)."""
        return self not in (SourceEvent.STALLED, SourceEvent.RESUMED)


class FrameSource(abc.ABC):
    """Something that yields RGB frames; close it (or use ``with``) to release it."""

    #: A short description for messages, e.g. ``webcam 0`` or the file name.
    name: str

    @abc.abstractmethod
    def read(self) -> Frame | SourceEvent:
        """The next frame, or the event that ended the source (repeated on later calls)."""

    def close(self) -> None:
        """Release the device or file; the default has nothing to release."""

    def __iter__(self) -> Iterator[Frame]:
        while isinstance(item := self.read(), Frame):
            yield item

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture``: subclasses choose the timestamps and the end event."""

    end_event: SourceEvent

    def __init__(self, capture: cv2.VideoCapture, name: str):
        self._capture = capture
        self.name = name
        self._next_index = 0
        self._ended = False

    def read(self) -> Frame | SourceEvent:
        if self._ended:
            return self.end_event
        ok, bgr = self._capture.read()
        if not ok:
            self._ended = True
            return self.end_event
        frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self._next_index, self._timestamp())
        self._next_index += 1
        return frame

    @abc.abstractmethod
    def _timestamp(self) -> float:
        """Timestamp of the frame just read (its index is ``self._next_index``)."""

    def close(self) -> None:
        self._capture.release()


class VideoFileSource(_OpenCVSource):
    """A video file decoded by OpenCV (FFmpeg); timestamps are ``index / fps``.

    ``frame_count`` is the count the container declares (0 when it declares none); it can
    be off by a few frames, so readers must still stop at ``SourceEvent.ENDED``.
    """

    end_event = SourceEvent.ENDED

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise FrameSourceError(f"video file not found: {path}")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise FrameSourceError(f"cannot open {path.name}: not a video OpenCV can decode")
        super().__init__(capture, path.name)
        self.fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))

    def _timestamp(self) -> float:
        return self._next_index / self.fps


class _LiveSource(_OpenCVSource):
    """A live camera: a failed read means it is gone (DISCONNECTED); frames are timestamped
    with the wall clock when they arrive."""

    end_event = SourceEvent.DISCONNECTED

    def _timestamp(self) -> float:
        return time.time()


class WebcamSource(_LiveSource):
    """An OpenCV camera by index."""

    def __init__(self, index: int, width: int | None = None, height: int | None = None):
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise FrameSourceError(f"cannot open webcam {index}: {why_webcam_did_not_open(index)}")
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        super().__init__(capture, f"webcam {index}")


def why_webcam_did_not_open(index: int, devices: Path = Path("/dev")) -> str:
    """The likely reason OpenCV could not open webcam ``index`` (it gives none itself). On Linux
    the device file tells missing, not permitted, and present but unopenable apart; elsewhere
    only the possibilities can be named."""
    if not sys.platform.startswith("linux"):
        return ("no such camera, it is in use by another program, or this program may not use the camera "
                "(see the system's privacy settings)")  # fmt: skip
    device = devices / f"video{index}"
    if not device.exists():
        present = sorted(path.name for path in devices.glob("video*") if path.name[len("video"):].isdigit())
        return f"{device} does not exist (cameras present: {', '.join(present) or 'none'})"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"this user may not open {device} (on most systems: add yourself to the 'video' group, then log in again)"
    return f"{device} is in use by another program, or is not a capture device (try the next number)"


class StreamSource(_LiveSource):
    """A network stream by URL; a read that gets no frame within ``read_timeout_s`` ends it
    (OpenCV's capture cannot go on after a timeout: reconnect). Raises
    :class:`~core.errors.FrameSourceError` when no frame comes within ``open_timeout_s``."""

    def __init__(self, url: str, open_timeout_s: float = OPEN_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S):
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(1000 * open_timeout_s),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(1000 * read_timeout_s)]  # fmt: skip
        started = time.monotonic()
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)
        if not capture.isOpened():
            capture.release()
            waited = time.monotonic() - started >= 0.9 * open_timeout_s
            raise FrameSourceError(f"cannot open {shown_url(url)}: {why_stream_did_not_open(url, waited, open_timeout_s)}")
        super().__init__(capture, shown_url(url))


def open_camera(spec: int | str) -> FrameSource:
    """Webcam ``spec`` (a number) or the stream at URL ``spec``; raises
    :class:`~core.errors.FrameSourceError` when it does not open."""
    return WebcamSource(spec) if isinstance(spec, int) else StreamSource(spec)


def camera_name(spec: int | str) -> str:
    """``webcam N`` or the URL without its password."""
    return f"webcam {spec}" if isinstance(spec, int) else shown_url(spec)


class ImageSource(FrameSource):
    """One still image as a one-frame source (timestamp 0)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        try:
            self._rgb: np.ndarray | None = read_image(path)
        except InputImageError as exc:
            raise FrameSourceError(str(exc)) from None
        self.name = path.name

    def read(self) -> Frame | SourceEvent:
        if self._rgb is None:
            return SourceEvent.ENDED
        frame, self._rgb = Frame(self._rgb, 0, 0.0), None
        return frame


class ImageFolderSource(FrameSource):
    """Images of a folder in name order at ``fps``; unreadable files are skipped with a warning."""

    def __init__(self, folder: str | Path, fps: float = DEFAULT_FPS):
        folder = Path(folder)
        if not folder.is_dir():
            raise FrameSourceError(f"image folder not found: {folder}")
        self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise FrameSourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        self.name = folder.name
        self.fps = fps
        self._next_path = 0
        self._next_index = 0

    def read(self) -> Frame | SourceEvent:
        while self._next_path < len(self._paths):
            path = self._paths[self._next_path]
            self._next_path += 1
            try:
                rgb = read_image(path)
            except InputImageError as exc:
                log.warning("skipping %s", exc)
                continue
            frame = Frame(rgb, self._next_index, self._next_index / self.fps)
            self._next_index += 1
            return frame
        return SourceEvent.ENDED


def open_source(spec: str | int | Path) -> FrameSource:
    """Open a source from a command-line style spec.

    An integer (or a string of digits) is a webcam index, a URL a network stream, a folder
    an image folder, a file with an image suffix a still image, any other file a video.
    """
    if isinstance(spec, int) or str(spec).isdigit():
        return WebcamSource(int(spec))
    if is_stream_url(str(spec)):
        return StreamSource(str(spec))
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    return VideoFileSource(path)


class CaptureThread:
    """Reads a source on a daemon thread into a queue of at most ``max_queued`` frames.

    When the queue is full the oldest frame is dropped (counted in ``dropped``), so the
    consumer always gets the newest frame. Events are queued behind the frames (they drop
    none, so the last frame of a video is always seen). The thread ends after a final
    event and closes the source itself (never concurrently with a read).

    ``realtime=True`` releases frames no earlier than their timestamps (measured from
    ``start()``), so a video file plays at its own speed like a webcam would.
    """

    def __init__(self, source: FrameSource, max_queued: int = 1, realtime: bool = False):
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, got {max_queued}")
        self.source = source
        self.realtime = realtime
        self.dropped = 0
        self.event: SourceEvent | None = None  # the event the consumer received
        self.error: BaseException | None = None  # what made the source FAILED
        self._queue: collections.deque[Frame | SourceEvent] = collections.deque()
        self._max_queued = max_queued
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}", daemon=True)
        self._started_at = 0.0

    def start(self) -> CaptureThread:
        self._started_at = time.monotonic()
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | SourceEvent | None:
        """The next queued item (the newest frame, or an event); None if nothing came within
        ``timeout`` s."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._queue, timeout):
                return None
            item = self._queue.popleft()
        if isinstance(item, SourceEvent) and item.final:
            self.event = item
        return item

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source's event (then in ``self.event``)."""
        while isinstance(item := self.get(), Frame):
            yield item

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the thread to end and wait up to ``timeout`` s; True if it ended.

        A thread stuck in a device read that outlives the timeout is a daemon: it
        cannot keep the process alive, and it closes the source once the read returns.
        """
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                item = self.source.read()
                if isinstance(item, Frame) and self.realtime:
                    delay = self._started_at + item.timestamp_s - time.monotonic()
                    if delay > 0 and self._stopping.wait(delay):
                        break
                self._push(item)
                if isinstance(item, SourceEvent) and item.final:
                    break
        except Exception as exc:  # noqa: BLE001 - reported to the consumer as an event
            log.exception("reading %s failed", self.source.name)
            self.error = exc
            self._push(SourceEvent.FAILED)
        finally:
            self.source.close()

    def _push(self, item: Frame | SourceEvent) -> None:
        with self._ready:
            frames = [position for position, queued in enumerate(self._queue) if isinstance(queued, Frame)]
            if isinstance(item, Frame) and len(frames) >= self._max_queued:
                del self._queue[frames[0]]
                self.dropped += 1
            self._queue.append(item)
            self._ready.notify()
