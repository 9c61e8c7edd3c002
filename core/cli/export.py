"""``omg-avatar export``: an avatar's neutral Gaussians at one level of detail as a
standard 3D Gaussian Splatting PLY file (readable by common 3DGS viewers)."""

from __future__ import annotations

import argparse

from core.avatar import load_avatar
from core.fileio import check_output_path
from core.render import save_ply


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export an avatar's neutral Gaussians as a 3DGS PLY file",
        description="Write the neutral avatar (head and shoulders) at one level of detail as a "
        "standard 3D Gaussian Splatting PLY file.",
    )
    parser.add_argument("avatar", help="avatar file (.omg)")
    parser.add_argument("--lod", type=int, default=0, help="level of detail (default: %(default)s)")
    parser.add_argument("-o", "--output", required=True, metavar="AVATAR.ply", help="PLY file to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output, (args.avatar,))
    avatar = load_avatar(args.avatar)
    gaussians = avatar.gaussians(args.lod)
    path = save_ply(gaussians, args.output)
    print(f"wrote {path}: {len(gaussians)} Gaussians (LOD {args.lod} of {avatar.num_lods})")
    return 0
