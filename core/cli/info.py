"""``omg-avatar info``: the OMG-Avatar network's size for a config: parameters per module
(trainable and frozen), Gaussians per level of detail with a FLAME file, and which of the
network's files are in place."""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

from core.config import available_configs, load_config
from core.fileio import check_output_path, write_json_atomic
from core.flame import find_flame_file, load_flame_model
from core.geometry.subdivision import build_lod
from core.model.backbone import DinoBackbone
from core.model.network import learned_modules, parameter_counts
from core.paths import DINOV2_FILE, resolve_model_file

#: FLAME's vertex count (FLAME 2020 and 2023), which sizes the global branch's queries when
#: no FLAME file is at hand.
FLAME_VERTICES = 5023


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="the network's parameters per module and Gaussians per LOD",
        description="Print the OMG-Avatar network's parameter counts per module (trainable and "
        "frozen) for a config and, with a FLAME file, its head Gaussians per level of detail.",
    )
    parser.add_argument(
        "--config", default="paper", metavar="NAME|FILE",
        help=f"model sizes: {' | '.join(available_configs())} or a YAML file (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--flame", metavar="FILE", help="FLAME model file (default: the config's, used when present)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_output_path(args.json)
    config = load_config(args.config)
    flame_file = find_flame_file(args.flame, config.flame)
    flame = load_flame_model(flame_file) if flame_file else None
    num_vertices = flame.v_template.shape[0] if flame else FLAME_VERTICES
    backbone = DinoBackbone(config.model, None, random_init=True)  # counted, never run
    modules = nn.ModuleDict({"backbone": backbone, **learned_modules(config, num_vertices, backbone.embed_dim)})
    counts = parameter_counts(modules)
    total = {kind: sum(module[kind] for module in counts.values()) for kind in ("trainable", "frozen")}
    head_gaussians = (
        build_lod(flame.faces, num_vertices, config.lod.levels, config.lod.scheme).num_vertices if flame else None
    )
    dinov2 = resolve_model_file(DINOV2_FILE)
    summary = {
        "config": config.name,
        "modules": counts,
        "total": total,
        "flame_vertices": num_vertices,
        "flame_file": str(flame_file) if flame_file else None,
        "head_gaussians_per_lod": head_gaussians,
        "dinov2_file": str(dinov2),
        "dinov2_file_present": dinov2.is_file(),
    }
    _print_summary(summary)
    if args.json is not None:
        write_json_atomic(args.json, summary)
    return 0


def _print_summary(summary: dict) -> None:
    print(f"OMG-Avatar network, config {summary['config']}")
    print(f"{'module':<16}{'trainable':>14}{'frozen':>14}")
    for name, count in [*summary["modules"].items(), ("total", summary["total"])]:
        print(f"{name:<16}{count['trainable']:>14,}{count['frozen']:>14,}")
    if summary["flame_file"]:
        per_lod = " / ".join(f"Sub#{lod} {count:,}" for lod, count in enumerate(summary["head_gaussians_per_lod"]))
        print(f"head Gaussians per LOD ({Path(summary['flame_file']).name}): {per_lod} (plus the shoulders, per photo)")
    else:
        print(f"no FLAME file: the global branch is counted for FLAME's {FLAME_VERTICES:,} vertices; "
              "Gaussians per LOD need the file (see the README's model files)")
    state = "present" if summary["dinov2_file_present"] else "missing"
    print(f"DINOv2 weights: {summary['dinov2_file']} ({state})")
