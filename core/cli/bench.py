"""``omg-avatar bench``: performance figures.

``bench avatar A.omg``: an avatar's per-frame path after tracking (animate, render, refine) at
each level of detail, with and without its refiner (:mod:`core.avatar.benchmark`); JSON
``{"machine": ..., "avatar": ..., "backend": ..., "rows": [{"lod", "refiner", "gaussians",
"animate_ms", "render_ms", "refine_ms", "frame_ms"}]}``.

``bench render``: rendering speed of every available backend. Renders head-like scenes at the paper's LOD Gaussian counts (config ``lod``) with 3 and 32
channels, prints FPS, the cpu backend's speed-up over the reference and the share of time
in projection, sorting and blending, and optionally writes the rows as JSON
(``{"machine": ..., "rows": [{"backend", "lod", "channels", "gaussians", "fps", ...}]}``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.arguments import non_negative_int, positive_int
from core.avatar import load_avatar
from core.avatar.animation import attach_flame
from core.avatar.benchmark import AvatarTiming, time_avatar
from core.avatar.flame_rig import rig_flame_file
from core.config import load_config
from core.fileio import check_output_path, write_json_atomic
from core.render.benchmark import BenchPlan, BenchRow, lod_counts, machine_description, run_benchmark, speedups
from core.render.renderer import BACKENDS, resolve_backend


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="measure performance", description="Measure performance.")
    kinds = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    defaults = BenchPlan()
    parser = kinds.add_parser(
        "render",
        help="rendering FPS of each backend at every LOD",
        description="Render head-like scenes at the paper's LOD Gaussian counts with every available "
        "backend and report FPS (median of timed renders after warm-up).",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument("--size", type=positive_int, default=defaults.size,
                        help="image side in pixels (default %(default)s)")
    levels = range(len(lod_counts(defaults.config_name)[0]))
    parser.add_argument("--lods", type=int, nargs="+", choices=levels, default=list(defaults.lods),
                        metavar="K",
                        help=f"LOD levels to render, {levels.start} to {levels.stop - 1} (default: %(default)s)")
    parser.add_argument("--channels", type=positive_int, nargs="+", default=list(defaults.channels), metavar="C",
                        help="feature channel counts (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", choices=[b for b in BACKENDS if b != "auto"], default=[],
                        help="backends to measure (default: every available one)")
    parser.add_argument("--repeats", type=positive_int, default=defaults.repeats,
                        help="timed renders per row for gsplat and cpu (default %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=defaults.warmup,
                        help="untimed renders first (default %(default)s)")
    parser.add_argument("--reference-repeats", type=positive_int, default=defaults.reference_repeats,
                        help="timed renders per row for the slow reference (default %(default)s)")
    parser.set_defaults(run=run)
    _add_avatar_parser(kinds)


def _add_avatar_parser(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "avatar",
        help="an avatar's per-frame milliseconds at every LOD, with and without its refiner",
        description="Time an avatar's per-frame path after tracking (animate, render, refine) through its "
        "source view at every level of detail, with and without its neural refiner (median of timed frames).",
    )
    parser.add_argument("avatar", metavar="AVATAR.omg", help="avatar file made by 'omg-avatar reconstruct'")
    parser.add_argument("--flame", metavar="FILE",
                        help="FLAME file for a network avatar's expressions (default: the release's in the models folder)")
    parser.add_argument("--lods", type=non_negative_int, nargs="+", metavar="K", help="levels (default: all)")
    parser.add_argument("--renderer", choices=BACKENDS, default="auto", help="rendering backend (default %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed frames per row (default %(default)s)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    parser.set_defaults(run=run_avatar)


def run_avatar(args: argparse.Namespace) -> int:
    if args.json:
        check_output_path(args.json, (args.avatar,))
    avatar = attach_flame(load_avatar(args.avatar), rig_flame_file(args.flame), load_config())
    lods = args.lods if args.lods is not None else list(range(avatar.num_lods))
    for lod in lods:
        avatar.num_gaussians(lod)  # an AvatarError for a level it does not have, before timing
    backend = resolve_backend(args.renderer)
    machine = machine_description()
    print(_machine_line(machine), flush=True)
    rows = time_avatar(avatar, lods, backend, args.repeats)
    expressions = "FLAME re-posed" if avatar.flame is not None and avatar.flame.model is not None else "no FLAME"
    size = avatar.source_camera.width
    print(f"{Path(args.avatar).name}: {avatar.method} avatar, {size}x{size}, renderer {backend}, {expressions}")
    print(_avatar_table(rows))
    if args.json:
        payload = {"machine": machine, "avatar": str(args.avatar), "backend": backend,
                   "rows": [row.as_dict() for row in rows]}  # fmt: skip
        write_json_atomic(args.json, payload)
        print(f"wrote {args.json}")
    return 0


def _avatar_table(rows: list[AvatarTiming]) -> str:
    header = f"{'LOD':>5s}{'refiner':>9s}{'Gaussians':>11s}{'animate':>10s}{'render':>9s}{'refine':>9s}{'frame ms':>10s}{'FPS':>7s}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{'Sub#' + str(row.lod):>5s}{'on' if row.refiner else 'off':>9s}{row.gaussians:11,d}"
                     f"{row.animate_ms:10.1f}{row.render_ms:9.1f}{row.refine_ms:9.1f}{row.frame_ms:10.1f}"
                     f"{1000.0 / row.frame_ms:7.2f}")  # fmt: skip
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output_path(args.json)
    plan = BenchPlan(
        backends=tuple(args.backends),
        lods=tuple(args.lods),
        channels=tuple(args.channels),
        size=args.size,
        repeats=args.repeats,
        warmup=args.warmup,
        reference_repeats=args.reference_repeats,
    )
    machine = machine_description()
    print(_machine_line(machine), flush=True)
    rows = run_benchmark(plan, progress=lambda message: print(f"  {message}", flush=True))
    print()
    print(_machine_line(machine))
    print(f"{plan.size}x{plan.size}, FPS = 1 / median time of an end-to-end render() call")
    print(_table(rows))
    gains = speedups(rows)
    if gains:
        print("cpu speed-up over reference: " + ", ".join(
            f"Sub#{lod} {channels} ch {gain:.0f}x" for (lod, channels), gain in sorted(gains.items())))
    if args.json:
        payload = {"machine": machine, "size": plan.size, "rows": [row.as_dict() for row in rows]}
        write_json_atomic(args.json, payload)
        print(f"wrote {args.json}")
    return 0


def _machine_line(machine: dict) -> str:
    gpu = machine["cuda"] or "no CUDA GPU"
    return (f"machine: {machine['cpu']}, {machine['cores']} cores "
            f"(numba threads {machine['numba_threads']}, torch threads {machine['torch_threads']}), {gpu}")


def _table(rows: list[BenchRow]) -> str:
    header = (f"{'backend':10s}{'LOD':>6s}{'ch':>4s}{'Gaussians':>11s}{'FPS':>9s}{'ms':>9s}"
              "  projection / sorting / blending")
    lines = [header, "-" * len(header)]
    for row in rows:
        shares = " / ".join(f"{100 * row.stage_shares[s]:4.0f}%" for s in row.stage_shares) or "fused"
        lines.append(f"{row.backend:10s}{'Sub#' + str(row.lod):>6s}{row.channels:4d}{row.gaussians:11,d}"
                     f"{row.fps:9.1f}{row.ms:9.1f}  {shares}")
    return "\n".join(lines)
