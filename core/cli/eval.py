"""``omg-avatar eval``: reenactment scores of avatars on talking-head videos and on the clips of
preprocessed datasets, for any reconstruction method (the training-free one, or the network
with its checkpoint).

Inputs are video files, dataset folders (``omg-avatar preprocess``; ``--split`` picks
their clips) and driver folders of the OMG-Avatar release (``smoothed.pkl`` or ``optim.pkl``
beside ``img_lmdb/``, its cropped frames). Each is a sequence (:mod:`core.evaluation.sequences`)
and is reenacted as :mod:`core.evaluation.reenactment` says:

* by default, self-reenactment (the paper's protocol): each sequence's first frame is the
  source photo, its later frames drive the avatar and are the targets;
* with ``--cross-identity``, sequence k's first frame is driven by sequence k+1's frames
  (the last by the first): only motion can be scored there (APD, and AED with a FLAME file);
  what needs a ground truth or a downloaded model is reported as unavailable.

The JSON has ``mode``, ``mean`` and ``videos`` (one entry per reenactment, keyed by its
sequence, or ``"<source> driven by <driver>"``), each with ``psnr``, ``ssim``, ``lpips``,
``akd``, ``apd``, ``aed`` and ``fps`` (null when unavailable), plus ``unavailable``:
metric -> why. A sequence's scores are means over its driven frames; ``mean`` averages
the sequences (each counts once).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.arguments import non_negative_int, positive_int
from core.cli.method_options import add_method_options, method_files
from core.config import Config, load_config
from core.dataset.layout import MANIFEST, DatasetError, read_manifest
from core.driving.release_driver import DRIVER_FILES
from core.errors import FrameSourceError, InputImageError, OutputPathError
from core.evaluation.metrics import load_lpips
from core.evaluation.reenactment import SHEET_CELL, Settings, aed_flame_layer, reenact
from core.evaluation.scoring import FRAME_METRICS, FrameScorer, mean_present
from core.evaluation.sequences import DriverFolderSequence, Sequence, VideoSequence, dataset_sequences
from core.evaluation.views import VIEW_COLUMNS
from core.fileio import check_output_path, write_json_atomic
from core.media import contact_sheet, write_png_atomic
from core.paths import LPIPS_FILE, resolve_model_file
from core.render import resolve_backend
from core.render.renderer import BACKENDS
from core.tracking.face_mesh import PortraitSegmenter

#: Keys of every entry of the JSON (``mean`` and each reenactment).
METRICS = (*FRAME_METRICS, "fps")
#: Why each metric that needs a ground truth is unavailable across identities.
NO_GROUND_TRUTH = "no ground truth across identities (the driver is another person)"
SPLITS = ("validation", "train", "all")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="reenactment scores (PSNR, SSIM, LPIPS, AKD, APD, AED, FPS) on videos and datasets",
        description="Self-reenactment (the paper's protocol: reconstruct from each sequence's first "
        "frame, drive with its later frames, compare renders with those frames) or, with "
        "--cross-identity, one sequence's first frame driven by the next sequence.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="talking-head videos, dataset folders written by omg-avatar preprocess, or driver "
                        "folders of the OMG-Avatar release (smoothed.pkl or optim.pkl, and img_lmdb/)")  # fmt: skip
    parser.add_argument("--split", choices=SPLITS, default="validation",
                        help="clips of a dataset to use (default %(default)s)")  # fmt: skip
    parser.add_argument("--cross-identity", action="store_true",
                        help="drive each sequence's first frame with the next sequence's frames (the last with the "
                        "first's): motion scores only")  # fmt: skip
    parser.add_argument("--lod", type=non_negative_int, default=1, help="level of detail (default %(default)s: Sub#1)")
    parser.add_argument("--json", metavar="FILE", help="write the scores to FILE as JSON")
    parser.add_argument("--per-frame", action="store_true",
                        help="with --json, also write every scored frame's index and metrics (per_frame, per "
                        "video), to find the frames a method fails on")  # fmt: skip
    parser.add_argument("--contact-sheet", metavar="FILE.png",
                        help="write rows of source, target and render for a few frames of each sequence")
    parser.add_argument("--views-sheet", metavar="FILE.png",
                        help="write, for each source, its photo and its avatar at every LOD (rows) seen at yaw "
                        "-45, -20, 0, 20 and 45 degrees (columns)")  # fmt: skip
    parser.add_argument("--lpips", metavar="FILE",
                        help="LPIPS weights (.safetensors; default: models/lpips/lpips_alex.safetensors when present)")
    parser.add_argument("--renderer", choices=BACKENDS, default="auto", help="rendering backend (default %(default)s)")
    parser.add_argument("--max-frames", type=positive_int, metavar="N",
                        help="use at most N frames of each sequence (the first included)")
    parser.add_argument("--config", default="paper", help="config name in assets/configs, or a YAML file")
    add_method_options(parser)
    parser.add_argument("--no-refiner", action="store_true",
                        help="score a network avatar's coarse RGB (its first 3 feature channels), not the refiner's")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.per_frame and not args.json:
        raise OutputPathError("--per-frame writes each frame's scores into the JSON report: give --json FILE")
    for output in (args.json, args.contact_sheet, args.views_sheet):
        if output:
            check_output_path(output, tuple(args.inputs))
    config = load_config(args.config)
    files = method_files(args)
    lpips = load_lpips(args.lpips)
    aed_flame, aed_missing = aed_flame_layer(config, files)
    settings = Settings(config, args.method, files, not args.no_refiner, args.lod, resolve_backend(args.renderer),
                        args.max_frames, aed_flame, views=args.views_sheet is not None)  # fmt: skip
    unavailable = _unavailable(args.cross_identity, lpips is not None, aed_missing)
    results, sheet_rows, views = {}, [], []
    with PortraitSegmenter() as segmenter, FrameScorer(config.tracking, lpips) as scorer:
        sequences = input_sequences(args.inputs, args.split, config, segmenter)
        if args.cross_identity and len(sequences) < 2:
            raise InputImageError("--cross-identity needs two or more sequences (videos or dataset clips)")
        for source, driver in _pairs(sequences, args.cross_identity):
            scores, rows, source_views = reenact(source, driver, settings, scorer, _progress)
            key = driver.name if source is driver else f"{source.name} driven by {driver.name}"
            results[key] = scores.summary(per_frame=args.per_frame)
            sheet_rows.extend(rows)
            views.extend(source_views)
            _progress(f"{key}: {_scores_line(results[key])}")
    report = {
        "mode": "cross-identity" if args.cross_identity else "self-reenactment",
        "lod": args.lod,
        "renderer": settings.backend,
        "lpips_model": str(lpips.path) if lpips else None,
        "unavailable": unavailable,
        "mean": {key: mean_present([video[key] for video in results.values()]) for key in METRICS},
        "videos": results,
    }
    _print_table(report)
    if args.json:
        write_json_atomic(args.json, report)
    if args.contact_sheet:
        columns = ("source", "driver" if args.cross_identity else "target", "render")
        write_png_atomic(args.contact_sheet, contact_sheet(sheet_rows, columns, SHEET_CELL))
    if args.views_sheet:
        write_png_atomic(args.views_sheet, contact_sheet(views, VIEW_COLUMNS, SHEET_CELL))
    return 0


def input_sequences(inputs: list[str], split: str, config: Config, segmenter: PortraitSegmenter) -> list[Sequence]:
    """The sequences of ``inputs``: a dataset folder gives its ``split`` clips, a release driver
    folder one sequence, anything else is a video. Checked up front, so that a missing input
    fails before any work."""
    size = config.tracking.crop.output_size
    sequences: list[Sequence] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir() and any((path / name).is_file() for name in DRIVER_FILES):
            sequences.append(DriverFolderSequence(path, size, segmenter, config))
        elif path.is_dir():
            if not (path / MANIFEST).is_file():
                raise DatasetError(f"{path} is a folder but not a dataset: it has no {MANIFEST}")
            sequences.extend(dataset_sequences(read_manifest(path), split, size))
        elif path.is_file():
            sequences.append(VideoSequence(path, config, segmenter))
        else:
            raise FrameSourceError(f"video file not found: {path}")
    names = [sequence.name for sequence in sequences]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputImageError(f"the same input is given twice: {', '.join(repeated)}")
    return sequences


def _pairs(sequences: list[Sequence], cross_identity: bool) -> list[tuple[Sequence, Sequence]]:
    """(source, driver) of every reenactment."""
    if not cross_identity:
        return [(sequence, sequence) for sequence in sequences]
    return [(sequence, sequences[(k + 1) % len(sequences)]) for k, sequence in enumerate(sequences)]


def _unavailable(cross_identity: bool, has_lpips: bool, aed_missing: str | None) -> dict[str, str]:
    """Metric -> why it is not reported (its values are null)."""
    unavailable = {}
    if cross_identity:
        unavailable.update(dict.fromkeys(("psnr", "ssim", "lpips", "akd"), NO_GROUND_TRUTH))
        unavailable["csim"] = "identity similarity needs an ArcFace model, which is not bundled and never downloaded"
    elif not has_lpips:
        unavailable["lpips"] = f"needs an LPIPS model file (--lpips, or {resolve_model_file(LPIPS_FILE)})"
    if aed_missing:
        unavailable["aed"] = aed_missing
    return unavailable


def _scores_line(scores: dict) -> str:
    return ", ".join(f"{key.upper()} {_format(scores[key])}" for key in METRICS)


def _format(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def _print_table(report: dict) -> None:
    rows = [(name, scores) for name, scores in report["videos"].items()] + [("mean", report["mean"])]
    width = max(len(name) for name, _ in rows)
    lpips = "from " + report["lpips_model"] if report["lpips_model"] else "unavailable (no model file)"
    print(f"{report['mode']} at Sub#{report['lod']}, renderer {report['renderer']}, LPIPS {lpips}")
    print(f"{'video':<{width}}  " + "  ".join(f"{key.upper():>7}" for key in METRICS))
    for name, scores in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{_format(scores[key]):>7}" for key in METRICS))
    for metric, reason in report["unavailable"].items():
        print(f"{metric.upper()} unavailable: {reason}")


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
