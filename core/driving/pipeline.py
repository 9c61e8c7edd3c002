"""The per-frame path from a frame to the avatar's driving state: frame -> tracker (face
mesh, crop, smoothing, head pose) -> FLAME fit (avatars with a FLAME rig, when a FLAME
file is at hand) -> animator -> :class:`~core.avatar.DrivingState`.

One :class:`DrivingPipeline` serves one driver: the app's session, ``omg-avatar drive``
and ``omg-avatar eval`` all step their frames through it, synchronously (:meth:`step`,
:meth:`step_tracked`) or one frame ahead of the renderer on a thread
(:class:`core.driving.worker.DrivingThread`). Each driven frame carries the same stage
timings (:data:`STAGES`) everywhere.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

from core.avatar import Animator, Avatar, DrivingState
from core.avatar.animation import REFERENCE_FRAMES
from core.config import Config
from core.driving.inputs import DrivingInput
from core.tracking.crop import CropBox
from core.tracking.flame_tracking import CalibratedFitting
from core.tracking.sources import Frame, SourceEvent
from core.tracking.tracker import TrackedFrame, Tracker

#: Timed stages of a driven frame, in order: reading the frame, tracking it (FLAME fit
#: included), turning it into a driving state.
STAGES = ("decode", "track", "animate")


@dataclass(frozen=True)
class DrivenFrame:
    """One frame through the driving pipeline.

    Attributes:
        tracked: the tracker's result (crop, landmarks, head pose, FLAME fit).
        state: the avatar's driving state; None without an avatar, or before the first face.
        stage_ms: milliseconds per stage of :data:`STAGES`.
    """

    tracked: TrackedFrame
    state: DrivingState | None
    stage_ms: dict[str, float]

    @property
    def index(self) -> int:
        """The frame's position in its input."""
        return self.tracked.index


class DrivingPipeline:
    """Tracks one driver's frames and turns them into one avatar's driving states.

    ``avatar`` None only tracks (states stay None) until :meth:`set_avatar`.
    ``reference_frames``: the driver's first tracked frames averaged into its neutral face.
    ``track`` False: frames come tracked already (stored landmarks, :meth:`step_tracked`).
    ``framing``: the tracker's crop box in every frame; None: framed on the first face.
    A frame where the tracker switched to another person starts the driving over: a new
    neutral reference, a new FLAME calibration.
    :meth:`set_avatar`, :meth:`recenter` and :meth:`set_smoothing` may be called from any
    thread; they take effect at the next frame. Close it (or use ``with``) to free the tracker.
    """

    def __init__(
        self,
        config: Config,
        avatar: Avatar | None = None,
        reference_frames: int = REFERENCE_FRAMES,
        track: bool = True,
        framing: CropBox | None = None,
    ):
        self._config = config
        self._reference_frames = reference_frames
        self._tracking = track
        self._framing = framing
        self._tracker: Tracker | None = None
        self._avatar: Avatar | None = None
        self._animator: Animator | None = None
        self._fitting: CalibratedFitting | None = None
        self._state: DrivingState | None = None
        self._lock = threading.Lock()
        self._changes: list[Callable[[], None]] = []
        self._smoothing_hz: float | None = None
        self._use(avatar)

    # ------------------------------------------------------------------ set-up
    def open(self) -> DrivingPipeline:
        """Start the tracker now (MediaPipe's graph) rather than at the first frame."""
        if self._tracking and self._tracker is None:
            self._tracker = Tracker.from_config(self._config, self._framing)
            if self._smoothing_hz is not None:
                self._tracker.set_smoothing(self._smoothing_hz)
        return self

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    def __enter__(self) -> DrivingPipeline:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def set_avatar(self, avatar: Avatar | None) -> None:
        """Drive ``avatar`` from the next frame on (a new neutral reference, a new FLAME fitting)."""
        self._later(lambda: self._use(avatar))

    def recenter(self) -> None:
        """Take the next tracked face as the driver's neutral face."""
        self._later(lambda: self._animator.recenter() if self._animator is not None else None)

    def set_smoothing(self, min_cutoff_hz: float) -> None:
        """The tracker's One-Euro minimum cutoff (lower: smoother and slower)."""

        def apply() -> None:
            self._smoothing_hz = min_cutoff_hz
            if self._tracker is not None:
                self._tracker.set_smoothing(min_cutoff_hz)

        self._later(apply)

    @property
    def fits_flame(self) -> bool:
        """Whether frames get a FLAME fit (an avatar with a FLAME rig and its FLAME model)."""
        return self._fitting is not None

    # ------------------------------------------------------------------ per frame
    def step(self, frame: Frame, decode_ms: float = 0.0) -> DrivenFrame:
        """Track ``frame`` (frames in order) and drive the avatar with it."""
        self._apply_changes()
        self.open()
        return self._drive(self._tracker.track(frame), decode_ms)

    def step_tracked(self, tracked: TrackedFrame, decode_ms: float = 0.0) -> DrivenFrame:
        """Drive the avatar with a frame tracked already: FLAME fit, then the animator."""
        self._apply_changes()
        return self._drive(tracked, decode_ms)

    # ------------------------------------------------------------------ internals
    def _drive(self, tracked: TrackedFrame, decode_ms: float) -> DrivenFrame:
        if tracked.switched:
            self._use(self._avatar)
        if self._fitting is not None:
            tracked = self._fitting.fit_frame(tracked)
        animate_ms = 0.0
        if tracked.tracked and self._animator is not None:
            started = _now_ms()
            self._state = self._animator.drive(tracked)
            animate_ms = _now_ms() - started
        return DrivenFrame(tracked, self._state, {"decode": decode_ms, "track": tracked.total_ms, "animate": animate_ms})

    def _use(self, avatar: Avatar | None) -> None:
        self._avatar = avatar
        self._animator = None if avatar is None else Animator(avatar, self._reference_frames)
        self._fitting = None if avatar is None else flame_fitting(avatar, self._config)
        self._state = None

    def _later(self, change: Callable[[], None]) -> None:
        with self._lock:
            self._changes.append(change)

    def _apply_changes(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        for change in changes:
            change()


def drive_input(
    input: DrivingInput,
    pipeline: DrivingPipeline,
    max_frames: int | None = None,
    on_event: Callable[[SourceEvent], None] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Generator[DrivenFrame, None, SourceEvent]:
    """``input``'s frames stepped through ``pipeline``, in order, on the caller's thread,
    until the input ends, ``max_frames`` frames are driven or ``stopping()``; returns the
    event that ended it (``ENDED`` for the last two). ``on_event`` hears every event the
    input reports, also those after which it goes on: a live camera's ``STALLED`` and
    ``RESUMED``, the ``ENDED`` of a ``resumable`` input."""
    count = 0
    while not stopping() and (max_frames is None or count < max_frames):
        started = time.perf_counter()
        item = input.read()
        decode_ms = 1000.0 * (time.perf_counter() - started)
        if item is None:
            continue
        if isinstance(item, SourceEvent):
            if on_event is not None:
                on_event(item)
            if not item.final or (item is SourceEvent.ENDED and input.resumable):
                continue
            return item
        count += 1
        yield pipeline.step(item, decode_ms)
    return SourceEvent.ENDED


def flame_fitting(avatar: Avatar, config: Config) -> CalibratedFitting | None:
    """A new FLAME fitting of tracked crops (``config.tracking.crop.output_size``) for driving
    ``avatar``; None unless its FLAME rig has its model (:func:`core.avatar.animation.attach_flame`)."""
    if avatar.flame is None or avatar.flame.model is None:
        return None
    fitting_config = dataclasses.replace(config, flame=dataclasses.replace(config.flame, scale=avatar.flame.scale))
    return CalibratedFitting.from_config(avatar.flame.model.fitting, fitting_config, config.tracking.crop.output_size)


def _now_ms() -> float:
    return 1000.0 * time.perf_counter()
