"""The app's render thread: the newest request's views of an avatar in a driving state,
drawn by the per-frame path's render step (:func:`core.avatar.view.render_view`) off the
UI thread."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from core.avatar import Avatar, DrivingState
from core.avatar.view import View, render_view
from core.errors import OmgError

log = logging.getLogger(__name__)

#: Seconds the render thread may take to stop.
STOP_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class RenderRequest:
    """Views of an avatar in a state; ``serial`` numbers the requests of a session."""

    serial: int
    avatar: Avatar
    views: tuple[View, ...]
    state: DrivingState | None
    backend: str


@dataclass(frozen=True)
class RenderedFrame:
    """Images for a request's views, or the error that stopped them."""

    request: RenderRequest
    images: tuple[np.ndarray, ...]
    render_ms: float
    error: Exception | None = None


class RenderThread:
    """Renders the newest request on its own thread, so the window keeps drawing meanwhile.

    On a CPU the splatting (compiled, holding the GIL) and Dear PyGui's frame (a software
    OpenGL driver, which releases it) then overlap: measured 31 frames/s instead of 18 when
    done one after the other. Requests never queue up: a new one replaces a waiting one.
    ``wake`` is set whenever a frame is done.
    """

    def __init__(self, wake: threading.Event):
        self._wake = wake
        self._condition = threading.Condition()
        self._request: RenderRequest | None = None
        self._done: RenderedFrame | None = None
        self._stopping = False
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

    def stop(self) -> bool:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(STOP_TIMEOUT_S)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._request is not None or self._stopping)
                if self._stopping:
                    return
                request = self._request
            started = time.perf_counter()
            try:
                images = tuple(render_view(request.avatar, view, request.state, request.backend)
                               for view in request.views)
                done = RenderedFrame(request, images, 1000.0 * (time.perf_counter() - started))
            except Exception as exc:  # noqa: BLE001 - handed to the UI thread, which shows it
                if not isinstance(exc, OmgError):
                    log.exception("rendering failed")
                done = RenderedFrame(request, (), 0.0, exc)
            with self._condition:
                self._done = done
                if self._request is request:
                    self._request = None
            self._wake.set()
