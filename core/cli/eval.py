"""``omg-avatar eval``: the paper's self-reenactment protocol on any talking-head video.

Per video:

1. The first frame is the source photo: it is framed like any photo (a 512x512
   head-and-shoulders crop) and the avatar is reconstructed from it (``--method``; a
   network avatar is rendered at the crop's size, through its refiner unless
   ``--no-refiner``, and driven by a FLAME fit per frame when the FLAME file is there).
   A first frame without a human face is an error.
2. Every later frame drives the avatar and is the target. The tracker frames the video
   once, from the first frame (the same box as the source crop, kept fixed), so target
   crops and the avatar share one camera.
3. The target's background is removed with the portrait mask (MediaPipe selfie
   segmentation) onto :data:`BACKGROUND`, and the avatar is rendered on the same colour.
4. Scores per frame (:mod:`core.train.metrics`): PSNR, SSIM and (with a local model file)
   LPIPS of the render against the target; AKD over the 478 MediaPipe landmarks (irises
   included) found afresh in the render and in the target (static mode, the same detector
   for both), and APD between the head poses of those landmarks. A frame where either image shows no face
   has no AKD or APD; the number of frames that have them is reported.

A video's scores are the means over its driven frames; ``mean`` averages the videos'
scores (each video counts once). FPS is the avatar's driving speed: driven frames per
second of tracking, animating and rendering (metrics and I/O excluded).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.avatar import Animator, reconstruct
from core.avatar.animation import attach_flame, flame_fitting
from core.avatar.network_method import NetworkFiles
from core.cli.drive import View, non_negative_int, positive_int
from core.cli.method_options import add_method_options, method_files
from core.cli.progress import ProgressClock
from core.config import Config, load_config
from core.errors import InputImageError
from core.flame import find_flame_file
from core.fileio import write_json_atomic
from core.media import captioned, contact_sheet, write_png_atomic
from core.render import resolve_backend
from core.render.renderer import BACKENDS
from core.tracking.face_mesh import FaceMesh, PortraitSegmenter
from core.tracking.head_pose import head_rotation
from core.tracking.photo import Portrait, portrait_from_image
from core.tracking.sources import Frame, VideoFileSource
from core.tracking.tracker import Tracker
from core.train.metrics import Lpips, keypoint_distance, load_lpips, pose_distance_deg, psnr, ssim

#: Background of targets and renders (RGB in [0, 1]); any colour is fair as both share it.
BACKGROUND = (1.0, 1.0, 1.0)
#: Scores of each driven frame (the fields of :class:`FrameScores`).
FRAME_METRICS = ("psnr", "ssim", "lpips", "akd", "apd")
#: Keys of every entry of the JSON (``mean`` and each video).
METRICS = (*FRAME_METRICS, "fps")
#: Driven frames shown per video on the contact sheet, evenly spread over the video.
SHEET_ROWS_PER_VIDEO = 3
#: The contact-sheet sampler holds at most this many times the rows it picks.
SAMPLE_BUFFER = 8
#: Side of a contact-sheet cell in pixels.
SHEET_CELL = 256
#: Seconds between progress lines on stderr.
PROGRESS_INTERVAL_S = 5.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="self-reenactment scores (PSNR, SSIM, LPIPS, AKD, APD, FPS) on videos",
        description="The paper's self-reenactment protocol: reconstruct from each video's first "
        "frame, drive with the later frames, compare renders with those frames.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="talking-head videos")
    parser.add_argument("--lod", type=non_negative_int, default=1, help="level of detail (default %(default)s: Sub#1)")
    parser.add_argument("--json", metavar="FILE", help="write the scores to FILE as JSON")
    parser.add_argument("--contact-sheet", metavar="FILE.png",
                        help="write rows of source, target and render for a few frames of each video")
    parser.add_argument("--lpips", metavar="FILE",
                        help="LPIPS model (exported .pt2; default: models/lpips/lpips_alex.pt2 when present)")
    parser.add_argument("--renderer", choices=BACKENDS, default="auto", help="rendering backend (default %(default)s)")
    parser.add_argument("--max-frames", type=positive_int, metavar="N",
                        help="use at most N frames of each video (the source frame included)")
    parser.add_argument("--config", default="paper", help="config name in assets/configs, or a YAML file")
    add_method_options(parser)
    parser.add_argument("--no-refiner", action="store_true",
                        help="score a network avatar's coarse RGB (its first 3 feature channels), not the refiner's")
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class FrameScores:
    """One driven frame's scores (None where the metric is unavailable for it)."""

    psnr: float
    ssim: float
    lpips: float | None
    akd: float | None
    apd: float | None


@dataclass
class VideoScores:
    """A video's per-frame scores, the seconds spent driving the avatar, and how it was made."""

    name: str
    frames: list[FrameScores] = field(default_factory=list)
    drive_s: float = 0.0
    method: str | None = None
    reconstruct_s: float | None = None

    def summary(self) -> dict:
        """The contract keys (:data:`METRICS`) plus ``frames``, ``landmark_frames`` (frames
        with AKD and APD), ``method`` and ``reconstruct_s``."""
        scores = {key: _mean([getattr(frame, key) for frame in self.frames]) for key in FRAME_METRICS}
        scores["fps"] = len(self.frames) / self.drive_s if self.drive_s > 0 else None
        scores["frames"] = len(self.frames)
        scores["landmark_frames"] = sum(frame.akd is not None for frame in self.frames)
        scores["method"] = self.method
        scores["reconstruct_s"] = self.reconstruct_s
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


class Scorer:
    """Prepares targets and scores renders against them (owns two MediaPipe graphs: close it)."""

    def __init__(self, config: Config, lpips: Lpips | None):
        self.lpips = lpips
        self._segmenter = PortraitSegmenter()
        self._mesh = FaceMesh(config.tracking, static=True)

    def target(self, crop: np.ndarray) -> np.ndarray:
        """[S, S, 3] uint8 ``crop`` with its background replaced by :data:`BACKGROUND`."""
        mask = self._segmenter.mask(crop)[..., None]
        background = np.asarray(BACKGROUND, np.float32) * 255.0
        return np.rint(crop * mask + background * (1.0 - mask)).astype(np.uint8)

    def score(self, rendered: np.ndarray, target: np.ndarray) -> FrameScores:
        """Scores of a [S, S, 3] uint8 render against its [S, S, 3] uint8 target."""
        image, reference = rendered / 255.0, target / 255.0
        lpips = self.lpips(image, reference) if self.lpips else None
        akd = apd = None
        rendered_landmarks, target_landmarks = self._mesh.detect(rendered), self._mesh.detect(target)
        if rendered_landmarks is not None and target_landmarks is not None:
            akd = keypoint_distance(rendered_landmarks, target_landmarks)
            apd = pose_distance_deg(head_rotation(rendered_landmarks), head_rotation(target_landmarks))
        return FrameScores(psnr(image, reference), ssim(image, reference), lpips, akd, apd)

    def close(self) -> None:
        self._segmenter.close()
        self._mesh.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    reconstruction = Reconstruction(args.method, method_files(args, config), not args.no_refiner)
    backend = resolve_backend(args.renderer)
    lpips = load_lpips(args.lpips)
    paths = [Path(video) for video in args.videos]
    results, sheet_rows = {}, []
    with Scorer(config, lpips) as scorer:
        for path in paths:
            scores, rows = evaluate_video(
                path, config, reconstruction, args.lod, backend, scorer, args.max_frames, _progress
            )
            results[path.name] = scores.summary()
            sheet_rows.extend(rows)
            _progress(f"{path.name}: {_scores_line(results[path.name])}")
    report = {
        "lod": args.lod,
        "renderer": backend,
        "lpips_model": str(lpips.path) if lpips else None,
        "mean": {key: _mean([video[key] for video in results.values()]) for key in METRICS},
        "videos": results,
    }
    _print_table(report)
    if args.json:
        write_json_atomic(args.json, report)
    if args.contact_sheet:
        write_png_atomic(args.contact_sheet, contact_sheet(sheet_rows, ("source", "target", "render"), SHEET_CELL))
    return 0


@dataclass(frozen=True)
class Reconstruction:
    """How the avatars are made and shown: the method, its files, whether to use the refiner."""

    method: str
    files: NetworkFiles
    use_refiner: bool


def evaluate_video(
    path: Path,
    config: Config,
    reconstruction: Reconstruction,
    lod: int,
    backend: str,
    scorer: Scorer,
    max_frames: int | None,
    progress: Callable[[str], None],
) -> tuple[VideoScores, list[list[np.ndarray]]]:
    """Self-reenactment of one video (see the module docstring).

    Returns:
        the video's scores, and :data:`SHEET_ROWS_PER_VIDEO` contact-sheet rows of
        [SHEET_CELL, SHEET_CELL, 3] uint8 images (source, target, render).
    """
    scores, sample = VideoScores(path.name), EvenSample(SHEET_ROWS_PER_VIDEO)
    with VideoFileSource(path) as video, Tracker.from_config(config) as tracker:
        first = video.read()
        if not isinstance(first, Frame):
            raise InputImageError(f"{path.name} has no frames")
        portrait = portrait_from_image(first.rgb, f"the first frame of {path.name}", config.tracking)
        started = time.perf_counter()
        avatar = reconstruct(portrait, reconstruction.method, config, files=reconstruction.files)
        scores.method, scores.reconstruct_s = avatar.method, time.perf_counter() - started
        progress(f"{path.name}: {avatar.method} avatar reconstructed from the first frame in {scores.reconstruct_s:.2f} s")
        avatar = attach_flame(avatar, find_flame_file(reconstruction.files.flame, config.flame), config)
        animator = Animator(avatar, reference_frames=1, fitting=flame_fitting(avatar, config))
        size = portrait.crop.image.shape[0]  # renders are scored against crops of this size
        camera = avatar.camera().resized(size, size)
        view = View(avatar, lod, camera, backend, BACKGROUND, reconstruction.use_refiner)
        _start_tracking(tracker, animator, first, portrait)
        source_cell = _cell(captioned(portrait.crop.image, path.name))
        report = ProgressClock(PROGRESS_INTERVAL_S)
        for frame in video:
            if max_frames is not None and frame.index >= max_frames:
                break
            clock = time.perf_counter()
            tracked = tracker.track(frame)
            rendered = view.image(view.gaussians(animator.drive(tracked)))
            scores.drive_s += time.perf_counter() - clock
            target = scorer.target(tracked.crop)
            frame_scores = scorer.score(rendered, target)
            scores.frames.append(frame_scores)
            if sample.wants(frame.index):
                sample.add(frame.index, [
                    source_cell,
                    _cell(captioned(target, f"frame {frame.index}")),
                    _cell(captioned(rendered, _frame_caption(frame_scores))),
                ])  # fmt: skip
            if report.due():
                progress(f"{path.name}: {len(scores.frames)} frames, {_scores_line(scores.summary())}")
    if not scores.frames:
        raise InputImageError(f"{path.name} has only one frame: nothing drives the avatar")
    return scores, sample.picked()


def _start_tracking(tracker: Tracker, animator: Animator, first: Frame, portrait: Portrait) -> None:
    """Track the source frame: it fixes the tracker's framing and is the animator's neutral
    reference (the avatar's own expression and pose), so a later frame's change from the
    source frame is what moves the avatar."""
    tracked = tracker.track(first)
    if tracked.box != portrait.crop.box:
        raise RuntimeError(f"the tracker framed {tracked.box}, the source crop is {portrait.crop.box}")
    animator.drive(tracked)


def _cell(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (SHEET_CELL, SHEET_CELL), interpolation=cv2.INTER_AREA)


def _frame_caption(scores: FrameScores) -> str:
    akd = "no face" if scores.akd is None else f"AKD {scores.akd:.1f} px"
    return f"PSNR {scores.psnr:.1f} dB, {akd}"


def _mean(values: list[float | None]) -> float | None:
    """Mean of the values that are not None (None if there are none)."""
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None


def _scores_line(scores: dict) -> str:
    return ", ".join(f"{key.upper()} {_format(scores[key])}" for key in METRICS)


def _format(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def _print_table(report: dict) -> None:
    rows = [(name, scores) for name, scores in report["videos"].items()] + [("mean", report["mean"])]
    width = max(len(name) for name, _ in rows)
    print(f"self-reenactment at Sub#{report['lod']}, renderer {report['renderer']}, "
          f"LPIPS {'from ' + report['lpips_model'] if report['lpips_model'] else 'unavailable (no model file)'}")  # fmt: skip
    print(f"{'video':<{width}}  " + "  ".join(f"{key.upper():>7}" for key in METRICS))
    for name, scores in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{_format(scores[key]):>7}" for key in METRICS))


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
