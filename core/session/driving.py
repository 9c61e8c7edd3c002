"""Driving the session's avatar live: the per-frame path's driving thread
(:mod:`core.driving`) reads a video or a webcam, tracks the face and turns it into
driving states; the UI thread takes the newest one and never waits.

A tracked driver folder of the OMG-Avatar release needs no tracker: its frames carry FLAME
codes and cameras (:mod:`core.session.release_folder`).

Videos play in real time (dropping frames when the viewer falls behind) or, for
benchmarks, paced by the consumer (every frame, none dropped); they pause, loop and seek.
Webcams keep only their newest frame. Whatever goes wrong arrives as a
:class:`~core.driving.DrivingEvent` for the UI to show.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.avatar import Avatar, DrivingState
from core.driving import (
    CameraStatus,
    Delivery,
    DrivenFrame,
    DrivingEvent,
    DrivingInput,
    DrivingPipeline,
    DrivingThread,
    LiveCamera,
    VideoPlayback,
)
from core.tracking.crop import landmark_box
from core.tracking.tracker import TrackedFrame

#: Side of the driving preview image, pixels.
PREVIEW_SIZE = 256
#: Colour of the landmarks drawn on the preview (RGB).
LANDMARK_COLOUR = (120, 220, 255)
#: Colour of the box around the followed face, the one that drives (RGB).
FOLLOWED_COLOUR = (90, 230, 120)
#: Colour of the boxes around the other faces found, which do not drive (RGB).
OTHER_FACE_COLOUR = (255, 170, 40)


@dataclass(frozen=True)
class DrivingUpdate:
    """The newest result of a :class:`Driver`, as the UI shows it.

    Attributes:
        state: the avatar's driving state, None until a face has been seen.
        tracker_ms: milliseconds the tracker spent on the frame (FLAME fit included), None
            for a source that needs no tracker (a driver folder).
        preview: [P, P, 4] float32 RGBA crop with the followed face's box and landmarks and
            the other faces' boxes drawn, None before a face (and without a tracker).
        position: the frame's index in its source.
        timestamp_s: the frame's timestamp in its source (a live camera's: when it was
            captured, on the wall clock, as far as the camera tells).
    """

    state: DrivingState | None
    tracker_ms: float | None
    preview: np.ndarray | None
    position: int
    timestamp_s: float = 0.0


class Driver:
    """A driving source on a thread (``worker``: what it runs, with ``start``, ``take``,
    ``events`` and ``stop``). The UI thread takes the newest result with :meth:`take` and never
    waits."""

    def __init__(self, name: str, worker):
        self.name = name
        self._thread = worker

    def start(self) -> Driver:
        self._thread.start()
        return self

    def take(self) -> DrivingUpdate | None:
        """The newest result if it is newer than the last one taken."""
        return self._thread.take()

    def events(self) -> list[DrivingEvent]:
        return self._thread.events()

    def set_avatar(self, avatar: Avatar | None) -> None:
        """Drive ``avatar`` from now on."""
        raise NotImplementedError

    def recenter(self) -> None:
        """Take the next driven face as the neutral one (a source without a tracker has none)."""

    def set_smoothing_cutoff(self, cutoff_hz: float) -> None:
        """Smooth the tracked motion with this One-Euro cutoff (a source without a tracker has none)."""

    def stop(self) -> bool:
        """Ask the thread to end and wait up to half a second; True if it ended."""
        return self._thread.stop()


class TrackedDriver(Driver):
    """A driving input stepped through a :class:`~core.driving.DrivingPipeline` (tracker, FLAME
    fit, animator) on a :class:`~core.driving.DrivingThread`; ``paced_by_consumer`` makes the
    thread wait until its previous result was taken (for benchmarks: no frame is tracked for
    nothing, none is dropped)."""

    def __init__(
        self,
        input: DrivingInput,
        pipeline: DrivingPipeline,
        wake: threading.Event | None = None,
        paced_by_consumer: bool = False,
    ):
        self.pipeline = pipeline
        self.paced = paced_by_consumer
        delivery = Delivery.PACED if paced_by_consumer else Delivery.NEWEST
        super().__init__(input.name, DrivingThread(input, pipeline, delivery, wake=wake, prepare=_shown))

    def newest_state(self) -> tuple[DrivingState, tuple[int, float]] | None:
        """The newest driven state and its source frame (index, timestamp), taken or not;
        None before a face was seen. Safe to call from any thread."""
        update = self._thread.newest()
        if update is None or update.state is None:
            return None
        return update.state, (update.position, update.timestamp_s)

    def set_avatar(self, avatar: Avatar | None) -> None:
        self.pipeline.set_avatar(avatar)

    def recenter(self) -> None:
        self.pipeline.recenter()

    def set_smoothing_cutoff(self, cutoff_hz: float) -> None:
        self.pipeline.set_smoothing(cutoff_hz)


class VideoDriver(TrackedDriver):
    """Plays a video file: real time (dropping frames when behind) or paced by the consumer;
    pause, loop and seek are safe to call from the UI thread. Raises
    :class:`~core.errors.FrameSourceError` for a file it cannot open."""

    def __init__(
        self, path: Path, pipeline: DrivingPipeline, wake: threading.Event | None = None, paced_by_consumer: bool = False
    ):
        self.playback = VideoPlayback(path, realtime=not paced_by_consumer, loop=True, hold_at_end=True)
        self.path, self.fps, self.frame_count = self.playback.path, self.playback.fps, self.playback.frame_count
        super().__init__(self.playback, pipeline, wake, paced_by_consumer)

    @property
    def loop(self) -> bool:
        return self.playback.loop

    @loop.setter
    def loop(self, loop: bool) -> None:
        self.playback.loop = loop

    @property
    def paused(self) -> bool:
        return self.playback.paused

    def set_paused(self, paused: bool) -> None:
        self.playback.set_paused(paused)

    def seek(self, index: int) -> None:
        """Show frame ``index`` next (also while paused)."""
        self.playback.seek(index)


class WebcamDriver(TrackedDriver):
    """A live camera (a webcam number or a stream URL), keeping only its newest frame and
    reconnecting it when it stalls (``stalled`` and ``resumed`` events); one that does not
    open arrives as a ``failed`` event. ``stamped``: its frames carry the loopback camera's
    corner code, whose index and send time they take (:mod:`core.driving.live`)."""

    def __init__(
        self, spec: int | str, pipeline: DrivingPipeline, wake: threading.Event | None = None, stamped: bool = False
    ):
        self.spec = spec
        self.camera = LiveCamera(spec, stamped=stamped)
        super().__init__(self.camera, pipeline, wake)

    def status(self) -> CameraStatus | None:
        """How the camera is doing (resolution, measured rate, drops, stall); None before it opened."""
        return self.camera.status()


def _shown(driven: DrivenFrame) -> DrivingUpdate:
    """What the UI shows of a driven frame (made on the driving thread, off the UI's)."""
    tracked = driven.tracked
    return DrivingUpdate(driven.state, driven.stage_ms["track"], _preview(tracked), tracked.index, tracked.timestamp_s)


def _preview(tracked: TrackedFrame) -> np.ndarray | None:
    """The tracked crop at :data:`PREVIEW_SIZE`, float32 RGBA: the followed face's landmarks as
    dots in a :data:`FOLLOWED_COLOUR` box, the other faces' boxes in :data:`OTHER_FACE_COLOUR`
    (a face outside the crop as a bar on the edge it lies beyond)."""
    if tracked.crop is None:
        return None
    image = cv2.resize(tracked.crop, (PREVIEW_SIZE, PREVIEW_SIZE), interpolation=cv2.INTER_AREA)
    scale = PREVIEW_SIZE / tracked.crop.shape[0]
    for box in tracked.other_faces if tracked.other_faces is not None else ():
        _draw_box(image, box * scale, OTHER_FACE_COLOUR)
    if tracked.landmarks is not None:
        _draw_box(image, landmark_box(tracked.landmarks) * scale, FOLLOWED_COLOUR)
        x, y = np.clip((tracked.landmarks[:, :2] * scale).astype(np.int64), 0, PREVIEW_SIZE - 2).T
        for dx in (0, 1):  # 2x2 dots
            for dy in (0, 1):
                image[y + dy, x + dx] = LANDMARK_COLOUR
    rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)  # opaque; 5x faster than numpy's strided fill
    return np.multiply(rgba, np.float32(1.0 / 255.0), dtype=np.float32)


def _draw_box(image: np.ndarray, box: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Outline ``box`` (x0, y0, x1, y1 in pixels of ``image`` [P, P, 3]) in ``colour``, clamped
    to the image: a box beyond an edge shows as a bar on that edge."""
    x0, y0, x1, y1 = np.clip(np.rint(box), 0, image.shape[0] - 1).astype(int).tolist()
    cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness=3)
