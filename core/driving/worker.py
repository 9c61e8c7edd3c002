"""The per-frame path's pipelined mode: a thread reads and drives frames one step ahead of
the consumer, which renders them.

Throughput is then set by the slower side (read + track + animate on this thread, render
and encode on the consumer's), not by the sum of all stages. How results reach the
consumer is the :class:`Delivery`:

* ``ORDERED``: every frame, in order, through a queue of two (``omg-avatar drive``): the
  thread waits while the queue is full, the consumer while it is empty (:meth:`get`);
* ``PACED``: like ``ORDERED`` with room for one (benchmarks in the app: nothing is driven
  for nothing, nothing dropped);
* ``NEWEST``: only the newest result waits (the app's live view): the consumer takes it
  when it can (:meth:`take`, never waiting) and older ones are dropped.

Events (an input that ended, a lost webcam, an error) are collected for :meth:`events`;
an error also ends the thread and is raised again by :meth:`get` once the frames before
it are taken.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.driving.inputs import DrivingInput
from core.driving.pipeline import DrivenFrame, DrivingPipeline, drive_input
from core.errors import OmgError
from core.tracking.sources import SourceEvent

log = logging.getLogger(__name__)

#: Seconds a stopping thread may take before its owner gives up on it.
STOP_TIMEOUT_S = 0.5


class Delivery(enum.Enum):
    """How driven frames reach the consumer (see the module docstring): (room, drop oldest)."""

    ORDERED = (2, False)
    PACED = (1, False)
    NEWEST = (1, True)


#: The :class:`DrivingEvent` kind of each source event (any other: ``failed``).
_EVENT_KINDS = {SourceEvent.ENDED: "ended", SourceEvent.DISCONNECTED: "lost", SourceEvent.STALLED: "stalled",
                SourceEvent.RESUMED: "resumed"}  # fmt: skip


@dataclass(frozen=True)
class DrivingEvent:
    """Something the user should hear about: ``ended`` (the input ended), ``lost`` (a
    live camera stopped delivering for good), ``stalled`` (a live camera stopped delivering
    and is being reconnected), ``resumed`` (it is back) or ``failed`` (reading or driving
    raised an error)."""

    kind: str
    message: str


class DrivingThread:
    """Reads ``input``, drives each frame through ``pipeline`` and delivers the results.

    It opens the pipeline (its tracker) on its own thread and closes the input and the
    pipeline when it ends: at the input's end (unless the input is ``resumable``), after
    ``max_frames`` frames, on an error, or when stopped. ``wake`` is set after every
    delivered frame and event. ``prepare`` turns each driven frame into what the consumer
    takes, on this thread (the app's landmark preview, for one); by default the frame itself.
    ``on_event`` hears every event as it happens, on this thread (also collected for :meth:`events`).
    """

    def __init__(
        self,
        input: DrivingInput,
        pipeline: DrivingPipeline,
        delivery: Delivery = Delivery.ORDERED,
        max_frames: int | None = None,
        wake: threading.Event | None = None,
        prepare: Callable[[DrivenFrame], Any] | None = None,
        on_event: Callable[[DrivingEvent], None] | None = None,
    ):
        self.input, self.pipeline = input, pipeline
        self.error: BaseException | None = None
        self.final_event: SourceEvent | None = None  # what ended the input, once it has
        self._room, self._drop_oldest = delivery.value
        self._max_frames = max_frames
        self._wake = wake
        self._prepare = prepare
        self._on_event = on_event
        self._condition = threading.Condition()
        self._mailbox: collections.deque[Any] = collections.deque()
        self._newest: Any = None  # the newest frame delivered, taken or not
        self._events: list[DrivingEvent] = []
        self._stopping = False
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"driving {input.name}", daemon=True)

    def start(self) -> DrivingThread:
        self._thread.start()
        return self

    def __enter__(self) -> DrivingThread:
        try:
            return self.start()
        except BaseException:  # e.g. a signal's exception while start() waits for the thread
            self.stop(timeout=None)  # a thread left running in native code aborts the process at exit
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop(timeout=None)

    # ------------------------------------------------------------------ consumer side
    def get(self) -> Any:
        """The next driven frame, waiting for it; None once the thread has ended and every
        frame was taken. Raises what ended the thread, if it failed."""
        with self._condition:
            self._condition.wait_for(lambda: self._mailbox or not self._running)
            if self._mailbox:
                frame = self._mailbox.popleft()
                self._condition.notify_all()
                return frame
        if self.error is not None:
            raise self.error
        return None

    def take(self) -> Any:
        """The newest driven frame not taken yet, without waiting (None if there is none)."""
        with self._condition:
            if not self._mailbox:
                return None
            frame = self._mailbox.pop()
            self._mailbox.clear()
            self._condition.notify_all()
            return frame

    def newest(self) -> Any:
        """The newest driven frame delivered so far, taken or not (None before the first)."""
        return self._newest

    def events(self) -> list[DrivingEvent]:
        """The events since the last call."""
        with self._condition:
            events, self._events = self._events, []
        return events

    @property
    def running(self) -> bool:
        return self._running

    def stop(self, timeout: float | None = STOP_TIMEOUT_S) -> bool:
        """Ask the thread to end and wait up to ``timeout`` seconds (None: until it has);
        True if it ended."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            with self.pipeline.open():
                self._drive()
        except BaseException as exc:  # noqa: BLE001 - reported, and raised again by get()
            self.error = exc
            if not isinstance(exc, OmgError):
                log.exception("driving from %s failed", self.input.name)
            self._report(DrivingEvent("failed", _failure_message(self.input.name, exc)))
        finally:
            self.input.close()
            with self._condition:
                self._running = False
                self._condition.notify_all()
            if self._wake is not None:
                self._wake.set()

    def _drive(self) -> None:
        frames = drive_input(self.input, self.pipeline, self._max_frames, self._report_source_event,
                             lambda: self._stopping)  # fmt: skip
        while True:
            try:
                driven = next(frames)
            except StopIteration as end:
                self.final_event = end.value
                return
            self._deliver(driven if self._prepare is None else self._prepare(driven))

    def _report_source_event(self, event: SourceEvent) -> None:
        self._report(driving_event(self.input, event))

    def _deliver(self, frame: Any) -> None:
        """Put ``frame`` in the mailbox: wait for room (or drop the oldest); not after a seek."""
        with self._condition:
            if self._drop_oldest:
                self._mailbox.clear()
            else:
                self._condition.wait_for(lambda: len(self._mailbox) < self._room or self._stopping)
            if self._stopping or self.input.superseded():
                return
            self._mailbox.append(frame)
            self._newest = frame
            self._condition.notify_all()
        if self._wake is not None:
            self._wake.set()

    def _report(self, event: DrivingEvent) -> None:
        with self._condition:
            self._events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        if self._wake is not None:
            self._wake.set()


def driving_event(input: DrivingInput, event: SourceEvent) -> DrivingEvent:
    """What the user hears of ``input``'s ``event``."""
    return DrivingEvent(_EVENT_KINDS.get(event, "failed"), input.describe(event))


def _failure_message(name: str, exc: BaseException) -> str:
    if isinstance(exc, OmgError):
        return str(exc)
    return f"driving from {name} failed unexpectedly: {exc}"
