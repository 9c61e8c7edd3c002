"""``omg-avatar warmup``: compile the cpu renderer's kernels now (numba; once per machine and
release), so that no later command or app start waits for them. The app runs it by itself
in the background on its first start."""

from __future__ import annotations

import argparse
import time

from core.render import kernels


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "warmup",
        help="compile the cpu renderer's kernels now (once per machine, about 15 s)",
        description="Compile the cpu renderer's and depth buffer's kernels into numba's on-disk "
        "cache, so that later commands and the app start without compiling.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    was_cached = kernels.cached()
    if not was_cached:
        print("compiling the cpu renderer's kernels (once per machine, about 15 s)...", flush=True)
    started = time.perf_counter()
    kernels.warm_up()
    seconds = time.perf_counter() - started
    print(f"cpu kernels {'loaded from the cache' if was_cached else 'compiled'} in {seconds:.1f} s")
    return 0
