"""Recording the viewport to MP4 on a writer thread, so encoding never stalls the window.

Frames arrive whenever the viewport shows a new image, at an uneven rate; the video has a
constant rate. Each frame is written as many times as the video's clock has advanced since
the last one (zero times when frames come faster), and the last one lasts until the
recording stops, so the video plays in real time for as long as the recording ran.
The file appears only when the recording stops (the session's atomic MP4 writer).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np

from core.session import AtomicMp4Writer, MediaWriteError

log = logging.getLogger(__name__)

#: Frames per second of recorded videos.
RECORDING_FPS = 30.0
#: Frames waiting for the encoder; beyond that, new frames are dropped (and counted).
MAX_QUEUED = 8


class Recorder:
    """One recording: ``add`` frames, then ``stop`` (which finishes the file)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = RECORDING_FPS):
        self.path = Path(path)
        self.fps = fps
        self.dropped = 0
        self.error: Exception | None = None
        self._writer = AtomicMp4Writer(self.path, fps, width, height)
        self._queue: queue.Queue[tuple[np.ndarray | None, float]] = queue.Queue(MAX_QUEUED)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    @property
    def frames(self) -> int:
        """Frames encoded so far."""
        return self._writer.frames

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def add(self, rgb: np.ndarray) -> None:
        """Queue one [H, W, 3] uint8 RGB frame shown now (dropped if the encoder is behind)."""
        try:
            self._queue.put_nowait((rgb, time.monotonic() - self._started))
        except queue.Full:
            self.dropped += 1

    def stop(self, timeout: float = 5.0) -> Path:
        """Finish the video and return its path; raises what the encoder raised, if anything."""
        self._queue.put((None, time.monotonic() - self._started))
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.path

    def _run(self) -> None:
        try:
            last = None
            while True:
                rgb, at = self._queue.get()
                if last is not None:  # the previous frame was on screen until now
                    for _ in range(int(at * self.fps) - self.frames):
                        self._writer.write(last)
                if rgb is None:
                    break
                if self.frames == 0 or int(at * self.fps) >= self.frames:
                    self._writer.write(rgb)
                last = rgb
            if not self._writer.frames:
                raise MediaWriteError(f"nothing was recorded to {self.path.name}: the view showed no frame")
            self._writer.commit()
        except Exception as exc:  # noqa: BLE001 - handed to stop() on the UI thread
            log.exception("recording %s failed", self.path)
            self.error = exc
            self._writer.discard()
