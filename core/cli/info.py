"""``omg-avatar info``: the OMG-Avatar network's size for a config (the released network,
:func:`core.model.release_network.release_config`): parameters per top-level module, by the
release's names (trainable and frozen: DINOv2's ViT), head Gaussians per level of detail with a
FLAME file, and which of the network's files are in place. With ``--checkpoint``: how a
checkpoint (the release's or ours) fits the released network
(:mod:`core.model.release_checkpoint`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from core.config import available_configs, load_config
from core.errors import CheckpointError
from core.fileio import check_output_path, write_json_atomic
from core.flame import find_flame_file, load_flame_model
from core.geometry.release_subdivision import ReleaseSubdivision
from core.model.network_checkpoint import read_network_checkpoint
from core.model.release_checkpoint import (
    DINO_PREFIX,
    FlameSizes,
    classify_keys,
    expected_release_shapes,
    module_counts,
)
from core.model.release_network import ReleaseConfig, ReleaseNetwork, release_config
from core.paths import DINOV2_FILE, resolve_model_file

#: FLAME's vertex count (FLAME 2020 and 2023), which sizes the learned head queries
#: (``head_base``) when no FLAME file is at hand.
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
    parser.add_argument(
        "--checkpoint", type=Path, metavar="FILE",
        help="instead, report on a network checkpoint (the release's omg_ckpt.pt, or ours .safetensors): its meta_cfg, tensors per "
        "module and missing / unexpected / mis-shaped keys (exit status 2 when it does not fit)",
    )  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_output_path(args.json)
    config = load_config(args.config)
    flame_file = find_flame_file(args.flame, config.flame)
    flame = load_flame_model(flame_file) if flame_file else None
    if args.checkpoint is not None:
        return _run_checkpoint(args.checkpoint, flame, flame_file, args.json)
    num_vertices = flame.v_template.shape[0] if flame else FLAME_VERTICES
    sizes = release_config(config)
    counts = parameter_counts(sizes, num_vertices)
    total = {kind: sum(module[kind] for module in counts.values()) for kind in ("trainable", "frozen")}
    head_gaussians = (
        list(ReleaseSubdivision(flame.faces, num_vertices, sizes.subdivision).num_vertices) if flame else None
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


def parameter_counts(sizes: ReleaseConfig, num_vertices: int) -> dict[str, dict[str, int]]:
    """Parameters of the released network of ``sizes`` for a FLAME of ``num_vertices`` vertices,
    per top-level module (``head_base`` too): ``{"trainable": n, "frozen": n}``, DINOv2's ViT
    frozen. Counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        modules = ReleaseNetwork.learned_modules(sizes)
    counts = {"head_base": {"trainable": num_vertices * sizes.dim, "frozen": 0}}
    vit_prefix = DINO_PREFIX.split(".", 1)[1]  # below base_dino_model
    for name, module in modules.items():
        frozen = sum(p.numel() for key, p in module.named_parameters() if name == "base_dino_model"
                     and key.startswith(vit_prefix))  # fmt: skip
        counts[name] = {"trainable": sum(p.numel() for p in module.parameters()) - frozen, "frozen": frozen}
    return counts


def _print_summary(summary: dict) -> None:
    print(f"OMG-Avatar network, config {summary['config']}")
    print(f"{'module':<24}{'trainable':>14}{'frozen':>14}")
    for name, count in [*summary["modules"].items(), ("total", summary["total"])]:
        print(f"{name:<24}{count['trainable']:>14,}{count['frozen']:>14,}")
    if summary["flame_file"]:
        per_lod = " / ".join(f"Sub#{lod} {count:,}" for lod, count in enumerate(summary["head_gaussians_per_lod"]))
        print(f"head Gaussians per LOD ({Path(summary['flame_file']).name}): {per_lod} (plus the shoulders, per photo)")
    else:
        print(f"no FLAME file: the head queries are counted for FLAME's {FLAME_VERTICES:,} vertices; "
              "Gaussians per LOD need the file (see the README's model files)")
    state = "present" if summary["dinov2_file_present"] else "missing"
    print(f"DINOv2 weights: {summary['dinov2_file']} ({state})")


def _run_checkpoint(path: Path, flame, flame_file: Path | None, json_file: Path | None) -> int:
    """``info --checkpoint``: the release checkpoint against the release network for its
    ``meta_cfg`` and the FLAME file (FLAME's standard sizes without one). The JSON is written
    even when the file does not fit; then a one-line error (exit status 2)."""
    checkpoint = read_network_checkpoint(path)
    flame_sizes = FlameSizes.of(flame) if flame is not None else FlameSizes()
    report = classify_keys(checkpoint.model, expected_release_shapes(checkpoint.sizes, flame_sizes))
    dinov2 = resolve_model_file(DINOV2_FILE)
    summary = {
        "checkpoint": str(path),
        "meta_cfg": checkpoint.meta_cfg,
        "sizes": dataclasses.asdict(checkpoint.sizes) | {"plane_size": checkpoint.sizes.plane_size},
        "modules": module_counts(checkpoint.model),
        "missing": report.missing,
        "unexpected": report.unexpected,
        "mismatched": report.mismatched,
        "ignored": len(report.ignored),
        "dinov2_in_checkpoint": report.has_dinov2,
        "dinov2_file": None if report.has_dinov2 else str(dinov2),
        "dinov2_file_present": None if report.has_dinov2 else dinov2.is_file(),
        "flame_file": str(flame_file) if flame_file else None,
        "flame_vertices": flame_sizes.vertices,
    }
    kind = "release checkpoint" if checkpoint.meta_cfg else "network checkpoint"
    print(f"{path.name}: {kind}, sizes {summary['sizes']}")
    print(f"{'module':<24}{'tensors':>10}{'elements':>16}")
    for name, count in summary["modules"].items():
        print(f"{name:<24}{count['tensors']:>10,}{count['elements']:>16,}")
    print(f"missing {len(report.missing)}, unexpected {len(report.unexpected)}, mis-shaped "
          f"{len(report.mismatched)}, ignored (training only) {len(report.ignored)}; FLAME sizes from "
          f"{Path(flame_file).name if flame_file else f'FLAME standard ({flame_sizes.vertices:,} vertices)'}")  # fmt: skip
    if not report.has_dinov2:
        state = "present" if summary["dinov2_file_present"] else "missing"
        print(f"no DINOv2 weights in the checkpoint: the DINOv2 file is needed at {dinov2} ({state})")
    if json_file is not None:
        write_json_atomic(json_file, summary)
    problem = report.problem(path.name)
    if problem:
        raise CheckpointError(problem)
    return 0
