"""One RGB frame in shared memory, written by the app and read by the presenter process.

A sequence lock keeps frames whole without blocking the writer: the writer makes the
sequence number odd, copies the pixels, and makes it even again; a reader takes a copy
only if it saw the same even number before and after copying.
"""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory

import numpy as np

#: Largest frame the block holds (side by side views of two 512 renders fit).
MAX_WIDTH, MAX_HEIGHT = 2048, 1024
#: Header: sequence number, width, height (as uint64 each).
_SEQUENCE, _WIDTH, _HEIGHT = range(3)
_HEADER_BYTES = 3 * 8


class SharedFrame:
    """Create with ``SharedFrame()`` in the writer, attach with ``SharedFrame(name)`` in the reader."""

    def __init__(self, name: str | None = None):
        size = _HEADER_BYTES + MAX_WIDTH * MAX_HEIGHT * 3
        self._memory = shared_memory.SharedMemory(name=name, create=name is None, size=size)
        self._owner = name is None
        if not self._owner:
            # Before Python 3.13 attaching also registers the block with this process's
            # resource tracker, which would delete the writer's block when the reader exits.
            resource_tracker.unregister(self._memory._name, "shared_memory")
        self._header = np.ndarray((3,), np.uint64, self._memory.buf, 0)
        self._pixels = np.ndarray((MAX_WIDTH * MAX_HEIGHT * 3,), np.uint8, self._memory.buf, _HEADER_BYTES)
        self._last_read = 0
        if self._owner:
            self._header[:] = 0

    @property
    def name(self) -> str:
        return self._memory.name

    def write(self, rgb: np.ndarray) -> None:
        """Publish one [H, W, 3] uint8 frame (at most MAX_HEIGHT x MAX_WIDTH)."""
        height, width = rgb.shape[:2]
        if width > MAX_WIDTH or height > MAX_HEIGHT or rgb.shape[2:] != (3,):
            raise ValueError(f"frame of shape {rgb.shape} does not fit the shared block")
        self._header[_SEQUENCE] += 1
        self._header[_WIDTH], self._header[_HEIGHT] = width, height
        self._pixels[: rgb.size] = rgb.reshape(-1)
        self._header[_SEQUENCE] += 1

    def read_new(self) -> np.ndarray | None:
        """A copy of the newest whole frame if it is newer than the last one read, else None."""
        before = int(self._header[_SEQUENCE])
        if before == self._last_read or before % 2:
            return None
        width, height = int(self._header[_WIDTH]), int(self._header[_HEIGHT])
        frame = self._pixels[: width * height * 3].reshape(height, width, 3).copy()
        if int(self._header[_SEQUENCE]) != before:
            return None  # written meanwhile; the next call gets the newer frame
        self._last_read = before
        return frame

    def release(self) -> None:
        """Detach; the writer also frees the block."""
        del self._header, self._pixels
        self._memory.close()
        if self._owner:
            self._memory.unlink()
