"""The app's refiner worker: the avatar's neural refiner off the splat path.

On a CPU the refiner (the network's StyleUNetLight) takes about 0.8 s a 512x512 frame while
splatting takes 30-100 ms, so the render thread does not wait for it: it hands the refiner
the splatted feature images of its newest frame and goes on splatting. The worker refines
whatever it was handed last when it is free (a job that waits is replaced by a newer one:
newest wins, nothing queues up), on its own thread; torch's convolutions and the cpu
renderer's kernels release the GIL, so splatting, the window and the refiner overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.errors import OmgError

if TYPE_CHECKING:
    from core.session.rendering import RenderRequest

log = logging.getLogger(__name__)

#: Seconds the worker may take to stop (a refinement under way ends before it can).
STOP_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class RefineJob:
    """Splatted feature images [H, W, C] of a request's views, to refine."""

    request: RenderRequest
    features: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class RefinedFrame:
    """Refined [H, W, 3] float32 RGB images of a request's views, or the error that stopped them."""

    request: RenderRequest
    images: tuple[np.ndarray, ...]
    refine_ms: float
    error: Exception | None = None


class RefinerThread:
    """Refines the newest job on its own thread (see the module docstring).

    ``wake`` is set whenever a refined frame is done; ``on_free`` is called (on the worker's
    thread) each time it has finished a job and waits for the next one.
    """

    def __init__(self, wake: threading.Event, on_free: Callable[[], None] = lambda: None):
        self._wake = wake
        self._on_free = on_free
        self._condition = threading.Condition()
        self._job: RefineJob | None = None
        self._working = False
        self._done: RefinedFrame | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="render refiner", daemon=True)
        self._thread.start()

    @property
    def free(self) -> bool:
        """Whether a job handed over now would start at once."""
        with self._condition:
            return not self._working and self._job is None

    def submit(self, job: RefineJob) -> None:
        """Refine ``job`` next, replacing one that waits."""
        with self._condition:
            self._job = job
            self._condition.notify()

    def take(self) -> RefinedFrame | None:
        """The newest refined frame, once."""
        with self._condition:
            done, self._done = self._done, None
        return done

    def stop(self) -> bool:
        """End the thread (within :data:`STOP_TIMEOUT_S`, unless a refinement is under way); True if it ended."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(STOP_TIMEOUT_S)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._job is not None or self._stopping)
                if self._stopping:
                    return
                job, self._job, self._working = self._job, None, True
            done = refine(job)
            with self._condition:
                self._done, self._working = done, False
            self._wake.set()
            self._on_free()


def refine(job: RefineJob) -> RefinedFrame:
    """The job's feature images through its avatar's refiner, timed; an error is kept in the frame."""
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            images = tuple(rgb_image(job.request.avatar.rgb(features)) for features in job.features)
        return RefinedFrame(job.request, images, 1000.0 * (time.perf_counter() - started))
    except Exception as exc:  # noqa: BLE001 - handed to the UI thread, which shows it
        if not isinstance(exc, OmgError):
            log.exception("refining failed")
        return RefinedFrame(job.request, (), 0.0, exc)


def rgb_image(values: torch.Tensor) -> np.ndarray:
    """[H, W, 3] float32 numpy RGB in 0..1, contiguous, from a tensor on any device."""
    image = np.ascontiguousarray(values.detach().cpu().numpy(), dtype=np.float32)
    return np.clip(image, 0.0, 1.0, out=image if image.flags.writeable else None)
