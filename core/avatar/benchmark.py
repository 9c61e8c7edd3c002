"""Speed of an avatar's per-frame path after tracking, at each level of detail, with and without
its refiner: animate (the driving state to Gaussians: FLAME re-posed when the avatar has its FLAME
model, the head turned, subdivided), render (splatting every feature channel through the source
view, or only the coarse RGB without the refiner) and refine (the neural refiner on the splatted
features). Each figure is the median of timed repeats after one untimed warm-up."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from core.avatar.avatar import Avatar, DrivingState
from core.avatar.flame_rig import FlamePose
from core.avatar.view import View, coarse_rgb, render_view
from core.render import render


@dataclass(frozen=True)
class AvatarTiming:
    """One level with or without the refiner; milliseconds per frame (median)."""

    lod: int
    refiner: bool
    gaussians: int
    animate_ms: float
    render_ms: float
    refine_ms: float
    frame_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def benchmark_state(avatar: Avatar) -> DrivingState:
    """A driven frame: the head turned 15 degrees and, with a FLAME model, the jaw open and an
    expression (so that FLAME is re-posed as when driven)."""
    flame = None
    if avatar.flame is not None and avatar.flame.model is not None:
        source = avatar.flame.source
        flame = FlamePose(source.expression + 0.5, np.array([0.2, 0.0, 0.0]), source.eyes, source.eyelids)
    turn = Rotation.from_euler("y", 15, degrees=True).as_matrix()
    return DrivingState(np.zeros((len(avatar.rig.landmarks), 3)), turn, np.zeros(3), flame)


def time_avatar(avatar: Avatar, lods: list[int], backend: str, repeats: int) -> list[AvatarTiming]:
    """Timings of ``avatar`` at ``lods`` (each with and without the refiner when it has one)."""
    state = benchmark_state(avatar)
    camera = avatar.camera()
    rows = []
    for lod in lods:
        for refiner in (False, True) if avatar.refiner is not None else (False,):
            view = View(camera, lod, use_refiner=refiner)
            render_view(avatar, view, state, backend)  # warm-up: caches, kernels
            parts = [_timed_frame(avatar, view, state, backend) for _ in range(repeats)]
            animate, splat, refine = (statistics.median(values) for values in zip(*parts))
            frame = statistics.median(sum(part) for part in parts)
            rows.append(AvatarTiming(lod, refiner, avatar.num_gaussians(lod), animate, splat, refine, frame))
    return rows


def _timed_frame(avatar: Avatar, view: View, state: DrivingState, backend: str) -> tuple[float, float, float]:
    """Milliseconds of animating, splatting and refining one frame, as ``render_view`` does them."""
    with torch.inference_mode():
        started = time.perf_counter()
        gaussians = avatar.gaussians(view.lod, state)
        animated = time.perf_counter()
        if not view.use_refiner:
            gaussians = coarse_rgb(gaussians)
        output = render(gaussians, view.camera, backend)
        rendered = time.perf_counter()
        if view.use_refiner:
            avatar.rgb(output.features)
        refine = time.perf_counter() - rendered if view.use_refiner else 0.0
    return tuple(1000.0 * seconds for seconds in (animated - started, rendered - animated, refine))
