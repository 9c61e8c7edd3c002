"""Reenactment of one photo by a driving sequence, scored frame by frame (``omg-avatar eval``).

:func:`reenact` makes the avatar from the source portrait, takes the driver's first frame as
its neutral reference (so the driver's motion from that frame moves the avatar) and drives
it with every later frame, scoring each render (:mod:`core.evaluation.scoring`):

* self-reenactment (the source is the driver's own first frame, the paper's protocol):
  the driving frame is the ground truth: PSNR, SSIM, LPIPS (with a model file), AKD, APD,
  and AED with a FLAME file;
* cross-identity (the source is another person): there is no ground truth, so only
  motion is scored: APD between the avatar's and the driver's head motion from their first
  frames, and AED with a FLAME file. Identity similarity (CSIM) needs an ArcFace model,
  which is not available: it is reported as such.

A driver folder of the release drives without the tracker: each frame's FLAME codes pose the
expression (an avatar with a FLAME rig, with a FLAME file), and each frame renders through its
own camera (the release's framing, in which its stored crops, the targets, were made), carried
into the avatar's head space so that its first frame's camera is the avatar's source view.

Speed is the avatar's driving speed: driven frames per second of tracking (videos),
animating and rendering; scoring and I/O are excluded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.avatar import Avatar, DrivingState, reconstruct
from core.avatar.animation import attach_flame
from core.avatar.network_method import NetworkFiles
from core.avatar.view import View, render_view
from core.config import Config
from core.driving import DrivingPipeline
from core.driving.release_states import anchored_camera, release_camera, release_state
from core.errors import InputImageError, ModelFileError
from core.evaluation.scoring import (
    FRAME_METRICS,
    FrameScorer,
    FrameScores,
    expression_distances,
    mean_present,
    relative_pose_distance_deg,
)
from core.evaluation.sequences import DriverFolderSequence, Sequence
from core.evaluation.views import view_rows
from core.flame import FlameLayer, find_flame_file, load_flame_layer
from core.geometry.camera import Camera
from core.media import captioned, rgb8
from core.progress import ProgressClock
from core.tracking.photo import Portrait

#: Driven frames shown per sequence on the contact sheet, evenly spread over it.
SHEET_ROWS_PER_SEQUENCE = 3
#: The contact-sheet sampler holds at most this many times the rows it picks.
SAMPLE_BUFFER = 8
#: Side of a contact-sheet cell in pixels.
SHEET_CELL = 256
#: Seconds between progress lines.
PROGRESS_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Settings:
    """How avatars are made, shown and scored.

    Attributes:
        config: tracking, camera and FLAME settings.
        method, files, use_refiner: the reconstruction method, its files, whether a network
            avatar is shown through its refiner.
        lod: level of detail; backend: rendering backend.
        max_frames: use at most this many frames of each driving sequence (its first included).
        aed_flame: the FLAME layer (with its landmark embedding) that AED fits; None: no AED.
        views: also render the views sheet's rows of each source avatar (:mod:`core.evaluation.views`).
    """

    config: Config
    method: str
    files: NetworkFiles
    use_refiner: bool
    lod: int
    backend: str
    max_frames: int | None = None
    aed_flame: FlameLayer | None = None
    views: bool = False


@dataclass
class ReenactmentScores:
    """One reenactment's per-frame scores, the seconds spent driving, and how the avatar was made."""

    source: str
    driver: str
    frames: list[FrameScores] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    drive_s: float = 0.0
    method: str | None = None
    reconstruct_s: float | None = None

    def summary(self, per_frame: bool = False) -> dict:
        """The means of :data:`~core.evaluation.scoring.FRAME_METRICS` over the frames that have
        them, ``fps``, ``frames``, ``landmark_frames`` (frames with motion scores), ``source``,
        ``driver``, ``method`` and ``reconstruct_s``; with ``per_frame``, also ``per_frame``: each
        scored frame's ``frame`` (its index in the driving sequence) and metrics, in order."""
        scores = {key: mean_present([getattr(frame, key) for frame in self.frames]) for key in FRAME_METRICS}
        scores["fps"] = len(self.frames) / self.drive_s if self.drive_s > 0 else None
        scores["frames"] = len(self.frames)
        scores["landmark_frames"] = sum(frame.apd is not None for frame in self.frames)
        scores.update(source=self.source, driver=self.driver, method=self.method, reconstruct_s=self.reconstruct_s)
        if per_frame:
            scores["per_frame"] = [{"frame": index, **dataclasses.asdict(frame)}
                                   for index, frame in zip(self.indices, self.frames)]  # fmt: skip
        return scores


class EvenSample:
    """Keeps about ``count`` items spread evenly over a stream of unknown length.

    Items are offered by increasing index; it keeps those whose index is a multiple of a
    stride that doubles whenever :data:`SAMPLE_BUFFER` times ``count`` are kept (so it
    never holds more). Ask :meth:`wants` first to skip preparing unwanted items.
    """

    def __init__(self, count: int):
        self.count = count
        self._stride = 1
        self._kept: list[tuple[int, object]] = []

    def wants(self, index: int) -> bool:
        return index % self._stride == 0

    def add(self, index: int, item: object) -> None:
        self._kept.append((index, item))
        if len(self._kept) >= SAMPLE_BUFFER * self.count:
            self._stride *= 2
            self._kept = [(i, kept) for i, kept in self._kept if i % self._stride == 0]

    def picked(self) -> list:
        """``count`` kept items (all if fewer were kept), the first and the last kept among them,
        the others nearest to evenly spaced indices between, in order."""
        if len(self._kept) <= self.count:
            return [item for _, item in self._kept]
        indices = np.array([index for index, _ in self._kept])
        targets = np.linspace(indices[0], indices[-1], self.count)
        chosen = np.abs(indices[None, :] - targets[:, None]).argmin(axis=1)
        return [self._kept[k][1] for k in chosen]


def aed_flame_layer(config: Config, files: NetworkFiles) -> tuple[FlameLayer | None, str | None]:
    """The FLAME layer AED fits (``files.flame``, else the config's file in the models folder)
    and None, or None and why AED is unavailable."""
    flame_file = find_flame_file(files.flame, config.flame)
    if flame_file is None:
        return None, f"needs a FLAME model (flame.model_file: {config.flame.model_file} in the models folder, or --flame)"
    try:
        return load_flame_layer(flame_file, config.flame), None
    except ModelFileError as exc:
        return None, str(exc)


def reenact(
    source: Sequence, driver: Sequence, settings: Settings, scorer: FrameScorer, progress: Callable[[str], None]
) -> tuple[ReenactmentScores, list[list[np.ndarray]], list[list[np.ndarray]]]:
    """Reenact ``source``'s first frame with ``driver`` (the same sequence: self-reenactment;
    another: cross-identity; see the module docstring). Opens and closes both.

    Returns:
        the scores; :data:`SHEET_ROWS_PER_SEQUENCE` contact-sheet rows of
        [SHEET_CELL, SHEET_CELL, 3] uint8 images (source, driving frame, render); and with
        ``settings.views``, the views sheet's rows of the source's avatar (else none).
    """
    if source is driver:
        with driver:
            return _reenact(source.name, driver.portrait(), driver, settings, scorer, False, progress)
    with source:
        portrait = source.portrait()
    with driver:
        return _reenact(source.name, portrait, driver, settings, scorer, True, progress)


@dataclass(frozen=True)
class _Step:
    """One driving frame.

    Attributes:
        index: its position in the driving sequence.
        state: the avatar's driving state (None: neutral).
        camera: the camera to render through; None: the view's.
        crop: [S, S, 3] uint8 the driving frame's crop (its face's landmarks for motion scores).
        scored: the [S, S, 3] uint8 render of this frame and its ground truth as they are
            scored, made when called with the render (outside the timed part).
    """

    index: int
    state: DrivingState | None
    camera: Camera | None
    crop: np.ndarray
    scored: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _reenact(
    source_name: str,
    portrait: Portrait,
    driver: Sequence,
    settings: Settings,
    scorer: FrameScorer,
    cross_identity: bool,
    progress: Callable[[str], None],
) -> tuple[ReenactmentScores, list[list[np.ndarray]], list[list[np.ndarray]]]:
    """:func:`reenact` with the source's portrait and the opened driver."""
    config = settings.config
    scores = ReenactmentScores(source_name, driver.name)
    started = time.perf_counter()
    avatar = reconstruct(portrait, settings.method, config, files=settings.files)
    scores.method, scores.reconstruct_s = avatar.method, time.perf_counter() - started
    progress(f"{driver.name}: {avatar.method} avatar reconstructed from {portrait.name} in {scores.reconstruct_s:.2f} s")
    flame_file = find_flame_file(settings.files.flame, config.flame)
    avatar = attach_flame(avatar, flame_file, config)
    size = portrait.crop.image.shape[0]  # renders are scored against crops of this size
    view = View(avatar.camera().resized(size, size), settings.lod, background=driver.background,
                use_refiner=settings.use_refiner)  # fmt: skip
    views = view_rows(avatar, portrait.crop.image, source_name, driver.background, settings.backend) if settings.views else []

    def render(state: DrivingState | None, camera: Camera | None = None) -> np.ndarray:
        shown = view if camera is None else dataclasses.replace(view, camera=camera)
        return rgb8(render_view(avatar, shown, state, settings.backend))

    if isinstance(driver, DriverFolderSequence):
        steps = _release_steps(driver, avatar, view.camera, flame_file is not None, settings.max_frames)
    else:
        steps = _tracked_steps(driver, avatar, config, settings.max_frames)
    sample, landmarks = EvenSample(SHEET_ROWS_PER_SEQUENCE), []
    source_cell = _cell(captioned(portrait.crop.image, source_name))
    report = ProgressClock(PROGRESS_INTERVAL_S)
    with contextlib.closing(steps):
        reference = next(steps)  # the driver's first frame: its neutral face
        rest = (scorer.landmarks(render(None)), scorer.landmarks(reference.crop)) if cross_identity else None
        while True:
            clock = time.perf_counter()
            step = next(steps, None)
            if step is None:
                break
            rendered = render(step.state, step.camera)
            scores.drive_s += time.perf_counter() - clock
            scored_render, target = step.scored(rendered)
            if not cross_identity:  # a cross-identity render is not the driver's frame: shown whole
                rendered = scored_render
            found = scorer.landmarks(rendered), scorer.landmarks(target)
            if cross_identity:
                frame_scores = FrameScores(apd=relative_pose_distance_deg(found[0], rest[0], found[1], rest[1]))
            else:
                frame_scores = scorer.compare(rendered, target, found)
            scores.frames.append(frame_scores)
            scores.indices.append(step.index)
            landmarks.append(found)
            if sample.wants(step.index):
                sample.add(step.index, [source_cell, _cell(captioned(target, f"frame {step.index}")),
                                        _cell(captioned(rendered, _caption(frame_scores)))])  # fmt: skip
            if report.due():
                progress(f"{driver.name}: {len(scores.frames)} frames")
    if not scores.frames:
        raise InputImageError(f"{driver.name} has only one frame: nothing drives the avatar")
    if settings.aed_flame is not None:
        rendered_landmarks, driving_landmarks = zip(*landmarks)
        distances = expression_distances(list(rendered_landmarks), list(driving_landmarks), settings.aed_flame, config, size)
        scores.frames = [dataclasses.replace(f, aed=d) for f, d in zip(scores.frames, distances)]
    return scores, sample.picked(), views


def _tracked_steps(driver: Sequence, avatar: Avatar, config: Config, max_frames: int | None) -> Iterator[_Step]:
    """A video's or a dataset clip's frames through the per-frame path (tracker, FLAME fit,
    animator), the first frame the driver's neutral reference."""
    framing = driver.portrait().crop.box  # a video is cropped where its portrait was (dataset clips come cropped)
    with DrivingPipeline(config, avatar, reference_frames=1, track=not driver.tracked, framing=framing) as pipeline:
        step = pipeline.step_tracked if driver.tracked else pipeline.step
        for frame in driver.frames(max_frames):
            driven = step(frame)
            yield _Step(driven.index, driven.state, None, driven.tracked.crop,
                        functools.partial(driver.scored, driven.tracked))  # fmt: skip


def _release_steps(
    driver: DriverFolderSequence, avatar: Avatar, source: Camera, expressions: bool, max_frames: int | None
) -> Iterator[_Step]:
    """A driver folder's frames in the release's framing: each rendered through its own camera,
    carried into the avatar's head space so that the first frame's camera is ``source`` (the
    avatar's view of that frame; :func:`~core.driving.release_states.anchored_camera`), with the
    frame's FLAME codes when ``expressions``."""
    first = None
    for frame in driver.frames(max_frames):
        camera = release_camera(frame.driver, source.width)
        if first is None:
            first = camera
        state = release_state(frame.driver, avatar, expressions, head_motion=False)
        yield _Step(frame.index, state, anchored_camera(camera, first, source), frame.image,
                    functools.partial(driver.scored, frame))  # fmt: skip


def _cell(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (SHEET_CELL, SHEET_CELL), interpolation=cv2.INTER_AREA)


def _caption(scores: FrameScores) -> str:
    if scores.psnr is None:
        return "no face" if scores.apd is None else f"APD {scores.apd:.1f} deg"
    akd = "no face" if scores.akd is None else f"AKD {scores.akd:.1f} px"
    return f"PSNR {scores.psnr:.1f} dB, {akd}"
