"""Rendering speed of the backends on head-like scenes at the paper's LOD Gaussian counts.

Used by ``omg-avatar bench render``; the numbers are end-to-end ``render`` calls (tensor
conversion included), the median of timed repeats after warm-up renders.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numba
import torch

from core.config import load_config
from core.render.profiling import STAGES, StageTimer
from core.render.renderer import available_backends, render, resolve_backend
from core.render.scenes import head_scene, portrait_camera


@dataclass(frozen=True)
class BenchRow:
    """One measured configuration; ``stage_shares`` maps projection/sorting/blending to the
    fraction of time spent there (empty for gsplat, whose stages are fused)."""

    backend: str
    lod: int
    channels: int
    gaussians: int
    fps: float
    ms: float
    repeats: int
    stage_shares: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BenchPlan:
    """What to measure. ``repeats``/``warmup`` apply to gsplat and cpu; the much slower
    reference gets ``reference_repeats`` after one warm-up."""

    backends: tuple[str, ...] = ()  # empty: every available backend
    lods: tuple[int, ...] = (0, 1, 2)
    channels: tuple[int, ...] = (3, 32)
    size: int = 512
    repeats: int = 15
    warmup: int = 3
    reference_repeats: int = 2
    config_name: str = "paper"


def lod_counts(config_name: str = "paper") -> tuple[list[int], int]:
    """Head Gaussians per LOD level and the shoulder Gaussians added to each, from the config."""
    lod = load_config(config_name).lod
    return list(lod.head_gaussians), lod.shoulder_gaussians


def machine_description() -> dict[str, object]:
    """CPU model, core count, thread pools and GPU, for the benchmark's header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_benchmark(plan: BenchPlan, progress: Callable[[str], None] = lambda message: None) -> list[BenchRow]:
    """Measure every (LOD, channels, backend) of ``plan``; ``progress`` hears about each step."""
    backends = [resolve_backend(name) for name in plan.backends] or available_backends()
    head_counts, shoulders = lod_counts(plan.config_name)
    camera = portrait_camera(plan.size, plan.config_name)
    rows = []
    for lod in plan.lods:
        if not 0 <= lod < len(head_counts):
            raise ValueError(f"LOD {lod} is not in the config (levels 0..{len(head_counts) - 1})")
        for channels in plan.channels:
            gaussians = head_scene(head_counts[lod], shoulders, channels)
            for backend in backends:
                on_device = gaussians.to("cuda") if backend == "gsplat" else gaussians
                reference = backend == "reference"
                repeats, warmup = (plan.reference_repeats, 1) if reference else (plan.repeats, plan.warmup)
                progress(f"{backend:9s} Sub#{lod} {channels:2d} ch ({len(gaussians):,} Gaussians): "
                         f"{warmup} warm-up + {repeats} timed renders")
                rows.append(_measure(on_device, camera, backend, lod, repeats, warmup))
    return rows


def _measure(gaussians, camera, backend: str, lod: int, repeats: int, warmup: int) -> BenchRow:
    sync = torch.cuda.synchronize if backend == "gsplat" else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            render(gaussians, camera, backend)
        sync()
        timer = None if backend == "gsplat" else StageTimer()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            render(gaussians, camera, backend, timer=timer)
            sync()
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    shares = {stage: timer.shares().get(stage, 0.0) for stage in STAGES} if timer else {}
    return BenchRow(
        backend, lod, gaussians.num_channels, len(gaussians), 1.0 / median, 1e3 * median, repeats, shares
    )


def speedups(
    rows: list[BenchRow], fast: str = "cpu", slow: str = "reference"
) -> dict[tuple[int, int], float]:
    """FPS of ``fast`` over ``slow`` per (LOD, channels) measured for both."""
    by_key = {(row.backend, row.lod, row.channels): row.fps for row in rows}
    return {
        (lod, channels): fps / by_key[(slow, lod, channels)]
        for (backend, lod, channels), fps in by_key.items()
        if backend == fast and (slow, lod, channels) in by_key
    }
