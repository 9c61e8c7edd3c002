"""The app's render thread: the newest request's views of an avatar in a driving state,
drawn by the per-frame path's render step (:func:`core.avatar.view.render_view`) off the
UI thread, with the avatar's neural refiner on a worker of its own.

A view that asks for the refined image of an avatar with a refiner is refined inline on a
CUDA renderer (``gsplat``: the refiner keeps up there), else asynchronously: the render
thread splats all feature channels, delivers their coarse RGB at once (a
:class:`RenderedFrame` with ``refining`` set) and hands the features to the
:class:`~core.session.refining.RefinerThread`, which delivers the refined images later and
less often (:class:`~core.session.refining.RefinedFrame`). The coarse stream never waits:
while the refiner is busy the render thread splats only the three coarse channels, and when
the refiner frees up it splats the features of the newest request it has not handed over.

A request driven by a source that is not paced by the viewer (a webcam, a stream, a video
in real time) follows its driver: the render thread draws the driver's newest state as it
starts, not the one the request was made with, and the UI does not ask again for a frame
the renderer took that way (``RenderThread.started_driven_by``). Driven live at Sub#1 on
2 cores, this cut the capture-to-display latency's 95th percentile from 130 to 120 ms.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.avatar import Avatar, DrivingState
from core.avatar.view import View, render_view, splatted_features
from core.errors import OmgError
from core.render import set_cpu_render_threads
from core.session.refining import RefinedFrame, RefineJob, RefinerThread, rgb_image

log = logging.getLogger(__name__)

#: Seconds the render thread may take to stop.
STOP_TIMEOUT_S = 0.5
#: The renderer whose frames are refined inline (the refiner keeps up with it).
INLINE_REFINING_BACKEND = "gsplat"


@dataclass(frozen=True)
class RenderRequest:
    """Views of an avatar in a state; ``serial`` numbers the requests of a session;
    ``driven_by``: the source frame (index, timestamp) that drove ``state``, if one did;
    ``cpu_threads``: threads of the cpu renderer (None: all; 1 while a tracker runs beside
    it, see :func:`core.render.set_cpu_render_threads`); ``newest_state``: for a request
    that follows a driver, where the render thread takes the driver's newest state and its
    source frame as it starts (a live source moves on while a request waits for the renderer)."""

    serial: int
    avatar: Avatar
    views: tuple[View, ...]
    state: DrivingState | None
    backend: str
    driven_by: tuple[int, float] | None = None
    cpu_threads: int | None = None
    newest_state: Callable[[], tuple[DrivingState, tuple[int, float]] | None] | None = None

    def with_newest_state(self) -> RenderRequest:
        """This request in its driver's newest state, when it follows one and that is newer."""
        newest = self.newest_state() if self.newest_state is not None else None
        if newest is None or newest[1] == self.driven_by:
            return self
        return dataclasses.replace(self, state=newest[0], driven_by=newest[1])


@dataclass(frozen=True)
class RenderedFrame:
    """Images for a request's views, or the error that stopped them; ``refining``: they are
    the coarse RGB of views whose refined images come later from the refiner worker."""

    request: RenderRequest
    images: tuple[np.ndarray, ...]
    render_ms: float
    error: Exception | None = None
    refining: bool = False


def refines_async(request: RenderRequest, view: View) -> bool:
    """Whether ``view``'s final image goes through the refiner worker (see the module docstring)."""
    refined = view.mode == "final" and view.use_refiner and request.avatar.refiner is not None
    return refined and request.backend != INLINE_REFINING_BACKEND


class RenderThread:
    """Renders the newest request on its own thread, so the window keeps drawing meanwhile.

    On a CPU the splatting (compiled kernels that release the GIL) and Dear PyGui's frame (a
    software OpenGL driver, which releases it too) then overlap: measured 31 frames/s instead of
    18 when done one after the other. Requests never queue up: a new one replaces a waiting one.
    ``wake`` is set whenever a frame (coarse or refined) is done.
    """

    def __init__(self, wake: threading.Event):
        self._wake = wake
        self._condition = threading.Condition()
        self._request: RenderRequest | None = None
        self._owed: RenderRequest | None = None  # rendered while the refiner was busy, not refined
        self._done: RenderedFrame | None = None
        self._stopping = False
        self.started_driven_by: tuple[int, float] | None = None  # the source frame of the newest render started
        self._refiner = RefinerThread(wake, on_free=self._refiner_freed)
        self._thread = threading.Thread(target=self._run, name="render", daemon=True)
        self._thread.start()

    def submit(self, request: RenderRequest) -> None:
        with self._condition:
            self._request = request
            self._condition.notify()

    def take(self) -> RenderedFrame | None:
        with self._condition:
            done, self._done = self._done, None
        return done

    def take_refined(self) -> RefinedFrame | None:
        """The refiner worker's newest refined frame, once."""
        return self._refiner.take()

    def stop(self) -> bool:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(STOP_TIMEOUT_S)
        refiner_stopped = self._refiner.stop()
        return not self._thread.is_alive() and refiner_stopped

    def _refiner_freed(self) -> None:
        with self._condition:
            self._condition.notify()

    def _has_work(self) -> bool:
        owed = self._owed is not None and self._refiner.free
        return self._request is not None or owed or self._stopping

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(self._has_work)
                if self._stopping:
                    return
                request, fresh = (self._request, True) if self._request is not None else (self._owed, False)
                self._owed = None
            started = request
            if fresh:
                started = request.with_newest_state()
                self.started_driven_by = started.driven_by
            done = self._render(started, with_features=self._refiner.free)
            if not fresh and done.error is None:
                continue  # only features for the refiner
            with self._condition:
                self._done = done
                if self._request is request:
                    self._request = None
            self._wake.set()

    def _render(self, request: RenderRequest, with_features: bool) -> RenderedFrame:
        """The request's images; with its features handed to the refiner when ``with_features``,
        else the request is owed a refinement (when it needs one)."""
        started = time.perf_counter()
        set_cpu_render_threads(request.cpu_threads)
        try:
            images, features = [], []
            refining = any(refines_async(request, view) for view in request.views)
            for view in request.views:
                if not refines_async(request, view):
                    images.append(render_view(request.avatar, view, request.state, request.backend))
                elif with_features:
                    features.append(splatted_features(request.avatar, view, request.state, request.backend))
                    images.append(rgb_image(features[-1][..., :3]))
                else:  # the coarse RGB only: three channels splat faster than all
                    coarse = dataclasses.replace(view, use_refiner=False)
                    images.append(render_view(request.avatar, coarse, request.state, request.backend))
            self._hand_over(request, refining, tuple(features))
            return RenderedFrame(request, tuple(images), 1000.0 * (time.perf_counter() - started), refining=refining)
        except Exception as exc:  # noqa: BLE001 - handed to the UI thread, which shows it
            if not isinstance(exc, OmgError):
                log.exception("rendering failed")
            return RenderedFrame(request, (), 0.0, exc)

    def _hand_over(self, request: RenderRequest, refining: bool, features: tuple[torch.Tensor, ...]) -> None:
        """Give the refiner the request's ``features``; without them, a ``refining`` request is
        owed a refinement (the newest such request, once the refiner is free)."""
        if features:
            self._refiner.submit(RefineJob(request, features))
        elif refining:
            with self._condition:
                if self._owed is None or self._owed.serial < request.serial:
                    self._owed = request
