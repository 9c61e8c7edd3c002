"""``omg-avatar preprocess``: a folder of talking-head videos -> a training dataset.

Each video becomes one clip (:mod:`core.train.preprocess`) laid out as
:mod:`core.dataset.layout` says, clips in parallel over ``--workers`` processes. Finished
clips are skipped on a re-run; a clip that fails is reported and skipped. The manifest is
rewritten at the end, listing every finished clip. ``--json`` writes a summary with at
least ``done``, ``skipped``, ``failed`` and ``seconds``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from core.config import load_config
from core.dataset.layout import write_manifest
from core.errors import OmgError
from core.fileio import write_json_atomic
from core.flame import find_flame_file
from core.train.preprocess import ClipJob, ClipResult, finished_clips, preprocess_clip, remove_partial_clips

#: The video files a VIDEO_DIR is searched for (not recursively).
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="turn a folder of talking-head videos into a training dataset",
        description="Sample frames of every video, crop, remove the background, track landmarks "
        "(and FLAME when a FLAME file is configured) and write a training dataset.",
    )
    parser.add_argument("video_dir", metavar="VIDEO_DIR", help=f"folder of {'/'.join(VIDEO_SUFFIXES)} videos")
    parser.add_argument("-o", "--output", metavar="DATASET", required=True, help="dataset folder (created)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="clips preprocessed at once")
    parser.add_argument("--frames-per-clip", type=int, default=50, metavar="N", help="frames sampled per clip")
    parser.add_argument("--config", default="paper", help="config name in assets/configs, or a YAML file")
    parser.add_argument(
        "--flame", metavar="FILE", help="FLAME model file (default: the config's, used when present)"
    )
    parser.add_argument("--no-flame", action="store_true", help="skip the FLAME fit even when a file exists")
    parser.add_argument(
        "--validation-fraction", type=float, default=0.05, metavar="F", help="share of clips held out"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the summary to FILE as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _check(args)
    started = time.perf_counter()
    config = load_config(args.config)
    flame_file = None if args.no_flame else find_flame_file(args.flame, config.flame)
    videos = _videos(Path(args.video_dir))
    clips_dir = Path(args.output) / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_clips(clips_dir)
    jobs = [
        ClipJob(video, clips_dir, args.frames_per_clip, config, flame_file)
        for video in videos
        if not (clips_dir / video.stem).is_dir()
    ]
    skipped = len(videos) - len(jobs)
    print(f"{len(videos)} video(s): {skipped} already preprocessed, {len(jobs)} to do with "
          f"{args.workers} worker(s); FLAME {flame_file or 'off'}", file=sys.stderr, flush=True)  # fmt: skip
    failures: dict[str, str] = {}
    done_frames = 0
    for count, result in enumerate(_results(jobs, args.workers), start=1):
        elapsed = time.perf_counter() - started
        eta = elapsed / count * (len(jobs) - count)
        if result.error:
            failures[result.name] = result.error
            outcome = f"failed: {result.error}"
        else:
            done_frames += result.frames
            outcome = f"{result.frames} frames in {result.seconds:.1f} s"
        print(f"[{count}/{len(jobs)}] {result.name}: {outcome} (ETA {eta:.0f} s)", file=sys.stderr, flush=True)
    clips = finished_clips(clips_dir)
    if not clips:
        raise OmgError(f"no clip could be preprocessed from {args.video_dir}")
    write_manifest(args.output, clips, args.validation_fraction, config.training.seed)
    seconds = time.perf_counter() - started
    summary = {
        "videos": len(videos),
        "done": len(jobs) - len(failures),
        "skipped": skipped,
        "failed": len(failures),
        "failures": failures,
        "clips_in_dataset": len(clips),
        "frames_written": done_frames,
        "seconds": seconds,
        "workers": args.workers,
        "flame_file": str(flame_file) if flame_file else None,
    }
    print(f"dataset {args.output}: {len(clips)} clip(s); this run {summary['done']} done, {skipped} skipped, "
          f"{len(failures)} failed in {seconds:.1f} s")  # fmt: skip
    if args.json:
        write_json_atomic(args.json, summary)
    return 0


def _check(args: argparse.Namespace) -> None:
    if args.workers < 1:
        raise OmgError(f"--workers must be at least 1, got {args.workers}")
    if args.frames_per_clip < 2:
        raise OmgError(f"--frames-per-clip must be at least 2 (a training pair), got {args.frames_per_clip}")
    if not 0.0 <= args.validation_fraction < 1.0:
        raise OmgError(f"--validation-fraction must be in [0, 1), got {args.validation_fraction}")


def _videos(folder: Path) -> list[Path]:
    """The folder's videos by name; an error when there are none or two share a clip name."""
    if not folder.is_dir():
        raise OmgError(f"video folder not found: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise OmgError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    stems = [video.stem for video in videos]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes:
        raise OmgError(f"videos with the same name would be the same clip: {', '.join(clashes)}")
    return videos


def _results(jobs: list[ClipJob], workers: int) -> Iterator[ClipResult]:
    """Each job's result as it finishes: in this process for one worker, else in a pool of
    spawned processes (each builds its own MediaPipe graphs and FLAME layer)."""
    if workers == 1 or len(jobs) <= 1:
        yield from map(preprocess_clip, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(preprocess_clip, jobs)
