"""The reconstruction method options shared by ``reconstruct`` and ``eval``: ``--method``
and the network method's files (``--checkpoint``, ``--flame``, ``--dinov2``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.avatar import available_methods
from core.avatar.network_method import NAME as NETWORK
from core.avatar.network_method import NetworkFiles, check_files
from core.errors import OmgError


class NetworkOptionError(OmgError):
    """Network file options given to another method."""


def add_method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        default=available_methods()[0],
        choices=available_methods(),
        help="reconstruction method (default: %(default)s)",
    )
    network = parser.add_argument_group("network method files (default: their places in the models folder)")
    network.add_argument("--checkpoint", type=Path, metavar="C",
                         help="network checkpoint: the release's omg_ckpt.pt or ours (.safetensors)")
    network.add_argument("--flame", type=Path, metavar="F",
                         help="FLAME_with_eye.pt, with head_template_mesh.obj and FLAME_masks.pkl beside it")
    network.add_argument("--dinov2", type=Path, metavar="W",
                         help="DINOv2 ViT-B/14 weights (only for a checkpoint without them)")


def method_files(args: argparse.Namespace) -> NetworkFiles:
    """The network files given; for ``--method network`` all must exist (one error line
    names each missing file), other methods refuse them."""
    files = NetworkFiles(args.checkpoint, args.flame, args.dinov2)
    if args.method == NETWORK:
        return check_files(files)
    elif files != NetworkFiles():
        raise NetworkOptionError(f"--checkpoint, --flame and --dinov2 are options of --method {NETWORK}")
    return files
