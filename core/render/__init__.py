"""Gaussian rendering: the Gaussians container, backends behind one ``render`` call, the mesh
depth buffer, and PLY export.

    from core.render import Gaussians, render
    out = render(gaussians, camera, backend="auto", background=0.0)
    out.features  # [H, W, C]; out.alpha, out.depth: [H, W]

Importing this package compiles nothing: numba kernels compile (or load from the on-disk
cache) on first use. It does set one process-wide default, ``GOMP_SPINCOUNT`` (below).
"""

import os

# numba's kernels run on GNU OpenMP here (no TBB), whose idle workers spin for ~300K
# iterations (about 3.6 ms of CPU per parallel call, measured) before sleeping. When other
# processes share the cores, those spins steal the time slices the working threads need:
# a Sub#0 frame took 54 ms instead of 8. A short spin keeps back-to-back kernels as fast on
# an idle machine and yields at once on a busy one (16 ms under the same load). It must be
# set before the OpenMP runtime loads, i.e. before the first parallel kernel runs; an
# explicit user setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from core.render.cpu import set_threads as set_cpu_render_threads  # noqa: E402 (after the OpenMP setting)
from core.render.gaussians import Gaussians
from core.render.output import RenderOutput
from core.render.ply import PlyFileError, load_ply, save_ply
from core.render.renderer import BACKENDS, RenderBackendError, available_backends, render, resolve_backend
from core.render.zbuffer import mesh_depth, visible_vertices

__all__ = [
    "BACKENDS",
    "Gaussians",
    "RenderBackendError",
    "RenderOutput",
    "available_backends",
    "PlyFileError",
    "load_ply",
    "mesh_depth",
    "render",
    "resolve_backend",
    "save_ply",
    "set_cpu_render_threads",
    "visible_vertices",
]
