"""A loopback camera: a video file served as a live MJPEG stream on 127.0.0.1.

It stands in for a phone camera app or any network camera in tests and demos: the
stream is ``http://127.0.0.1:PORT/video`` (``multipart/x-mixed-replace`` JPEG parts, what
such apps serve and OpenCV's FFmpeg backend reads), paced at the video's frame rate and
looping at its end. Every frame carries its index and the time it was sent in a corner
code (:mod:`core.driving.frame_code`) that survives JPEG, for measuring the frames dropped
and the capture-to-display latency of whatever reads the stream.

The camera can be told to misbehave like a real one: :meth:`~LoopbackCamera.stall` (no
frames for a while, connections kept open), :meth:`~LoopbackCamera.drop` (skip frames)
and :meth:`~LoopbackCamera.disconnect` (close every open stream; new ones are served).

Standard library and OpenCV only: an HTTP server that pushes the newest frame to each
client, each client on its own thread.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from core.driving.frame_code import INDEX_BITS, stamp_code
from core.driving.inputs import VideoPlayback
from core.tracking.sources import Frame

#: The stream's path on the server.
STREAM_PATH = "/video"
#: JPEG quality of the stream's frames.
JPEG_QUALITY = 85
#: Videos whose frames (at the stream's size) take at most this many bytes are decoded once.
CACHE_BYTES = 256 * 1024 * 1024
#: Seconds a client's thread waits for a new frame before checking whether to stop.
WAIT_S = 0.2
_BOUNDARY = "loopbackframe"


class LoopbackCamera:
    """A video file as a live MJPEG stream (see the module docstring).

    Args:
        video: the video file.
        size: (width, height) of the stream's frames; default the video's.
        fps: frames per second; default the video's.
        port: TCP port on 127.0.0.1; 0 picks a free one (see :attr:`url`).
        stamped: stamp each frame with the corner code (False: serve the video's frames as they are).

    Raises :class:`~core.errors.FrameSourceError` for a video it cannot open.
    """

    def __init__(
        self,
        video: str | Path,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        port: int = 0,
        stamped: bool = True,
    ):
        self._video = VideoPlayback(video, loop=True)  # every frame in order; paced here
        self._stamped = stamped
        self.fps = float(fps or self._video.fps)
        self._size = size
        self._frame: bytes | None = None  # the newest JPEG
        self._frames_sent = 0
        self._new_frame = threading.Condition()
        self._stopping = threading.Event()
        self._stalled_until = 0.0
        self._to_drop = 0
        self._generation = 0  # bumped by disconnect(): streams of an older one end
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{STREAM_PATH}"
        self._threads = [
            threading.Thread(target=self._produce, name="loopback frames", daemon=True),
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": WAIT_S}, name="loopback server",
                             daemon=True),
        ]  # fmt: skip

    def __enter__(self) -> LoopbackCamera:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> LoopbackCamera:
        """Start producing frames and serving the stream."""
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop serving (open streams end) and close the video."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._new_frame:
            self._new_frame.notify_all()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._video.close()

    def stall(self, seconds: float) -> None:
        """Send no frames for ``seconds`` (streams stay open, as a frozen camera's do; a stream
        opened meanwhile waits too: a stream gets the frames published after it opened)."""
        self._stalled_until = time.monotonic() + seconds

    def drop(self, frames: int) -> None:
        """Skip the next ``frames`` frames (their indices never reach a client)."""
        self._to_drop += frames

    def disconnect(self) -> None:
        """End every open stream, as a camera app that closes does; later requests are served."""
        with self._new_frame:
            self._generation += 1
            self._new_frame.notify_all()

    @property
    def frames_sent(self) -> int:
        """Frames published so far (dropped ones not counted)."""
        return self._frames_sent

    def _produce(self) -> None:
        """Publish the video's frames at ``fps``, stamped with their indices, looping."""
        index, next_at = 0, time.monotonic()
        for bgr in self._frames():
            next_at += 1.0 / self.fps
            self._stopping.wait(max(0.0, next_at - time.monotonic()))
            while time.monotonic() < self._stalled_until and not self._stopping.is_set():
                self._stopping.wait(min(WAIT_S, self._stalled_until - time.monotonic()))
                next_at = time.monotonic()
            if self._stopping.is_set():
                return
            if self._to_drop > 0:
                self._to_drop -= 1
            else:
                self._publish(index, bgr)
            index = (index + 1) % (1 << INDEX_BITS)

    def _frames(self) -> Iterator[np.ndarray]:
        """The video's frames at the stream's size (BGR, not to be modified), looping forever.

        A video whose frames fit in :data:`CACHE_BYTES` is decoded once and then replayed from
        memory: decoding and resizing took 3.5 of the 4.5 ms a frame cost, and a camera's
        stand-in should leave the machine's cores to whatever reads the stream.
        """
        cache: list[np.ndarray] | None = []
        while not self._stopping.is_set():
            frame = self._video.read()
            if not isinstance(frame, Frame):
                return  # a video without frames: streams simply get none
            if frame.index == 0 and cache:  # looped: the whole video is in the cache
                break
            bgr = self._sized(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
            if cache is not None:
                cache.append(bgr)
                if len(cache) * bgr.nbytes > CACHE_BYTES:
                    cache = None
            yield bgr
        while cache and not self._stopping.is_set():
            yield from cache

    def _sized(self, bgr: np.ndarray) -> np.ndarray:
        if self._size is not None and (bgr.shape[1], bgr.shape[0]) != tuple(self._size):
            bgr = cv2.resize(bgr, tuple(self._size), interpolation=cv2.INTER_AREA)
        return bgr

    def _publish(self, index: int, bgr: np.ndarray) -> None:
        if self._stamped:
            bgr = bgr.copy()
            stamp_code(bgr, index)
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        with self._new_frame:
            self._frame = jpeg.tobytes()
            self._frames_sent += 1
            self._new_frame.notify_all()

    def _stream(self, write) -> None:
        """Write the stream's parts with ``write`` until closing or a disconnect."""
        with self._new_frame:
            generation, last = self._generation, self._frame  # frames published from now on
        while not self._stopping.is_set():
            with self._new_frame:
                self._new_frame.wait_for(
                    lambda: self._stopping.is_set() or self._generation != generation or self._frame is not last, WAIT_S
                )
                if self._stopping.is_set() or self._generation != generation:
                    return
                if self._frame is last:
                    continue
                last = self._frame
            header = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(last)}\r\n\r\n"
            write(header.encode("ascii") + last + b"\r\n")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler_for(camera: LoopbackCamera) -> type[http.server.BaseHTTPRequestHandler]:
    class StreamHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != STREAM_PATH:
                self.send_error(404, f"the loopback camera serves {STREAM_PATH} only")
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                camera._stream(self._write)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def _write(self, data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
            pass  # a camera does not log every request

    return StreamHandler
