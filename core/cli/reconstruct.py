"""``omg-avatar reconstruct``: one portrait photo to an avatar file (``.omg``).

Prints progress on stderr while it works (from the moment the photo has a face, so a bad
photo gives one line: the error), then the seconds taken (photo preparation and
reconstruction) and the Gaussians of every level of detail (head plus shoulders).

``--method network`` runs the paper's network; it needs its checkpoint, a FLAME file and
the DINOv2 weights (``--checkpoint``, ``--flame``, ``--dinov2``, each defaulting to its
place in the models folder), checked before the photo is even read: missing files give
one error line naming each of them. The checkpoint's config sizes the network; ``--config``
gives the tracking and fitting settings (and the default FLAME file).
"""

from __future__ import annotations

import argparse
import sys
import time

from core.avatar import reconstruct, save_avatar
from core.cli.method_options import add_method_options, method_files
from core.config import load_config
from core.fileio import check_output_path
from core.tracking.photo import prepare_portrait


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct",
        help="reconstruct an avatar from one portrait photo",
        description="Reconstruct an animatable multi-LOD Gaussian avatar from one portrait photo.",
    )
    parser.add_argument("photo", help="portrait photo (JPEG, PNG, ...)")
    parser.add_argument("-o", "--output", required=True, metavar="AVATAR.omg", help="avatar file to write")
    parser.add_argument(
        "--config",
        default="paper",
        help="config name in assets/configs, or a YAML file (network: the checkpoint's config sizes the "
        "network and wins over this one, which gives the tracking and fitting settings)",
    )
    add_method_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output, (args.photo,))
    config = load_config(args.config)
    files = method_files(args)
    started = time.perf_counter()
    portrait = prepare_portrait(args.photo, config.tracking)
    prepared = time.perf_counter()
    print(f"  photo ready: face found and framed in {prepared - started:.2f} s", file=sys.stderr, flush=True)
    avatar = reconstruct(portrait, args.method, config, progress=_print_progress, files=files)
    finished = time.perf_counter()
    path = save_avatar(avatar, args.output)
    print(f"avatar:           {path}")
    print(f"method:           {avatar.method}")
    print(f"seconds:          {finished - started:.2f} ({prepared - started:.2f} photo, "
          f"{finished - prepared:.2f} reconstruction)")  # fmt: skip
    for lod in range(avatar.num_lods):
        head = avatar.num_gaussians(lod) - len(avatar.shoulders)
        print(f"LOD {lod} Gaussians:  {avatar.num_gaussians(lod)} ({head} head, {len(avatar.shoulders)} shoulders)")
    return 0


def _print_progress(fraction: float, message: str) -> None:
    print(f"  {100 * fraction:3.0f}% {message}", file=sys.stderr, flush=True)
