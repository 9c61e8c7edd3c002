"""The cpu backend's compiled kernels: are they compiled, compile them now, or compile them in
a background process.

numba compiles the splat rasteriser and the mesh depth buffer on their first call (about 15 s
on 2 cores) and keeps them in its on-disk cache, so only a machine's very first start pays.
An interactive start does not wait for it: :func:`start_background_compile` compiles them in
a separate process (``omg-avatar warmup``), and while it runs, :func:`host_backend` names the
torch paths (the reference renderer, the torch depth buffer), which give the same images,
slower. Once the process is done, the next call loads the kernels from the cache.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import torch
from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher

from core.geometry.camera import Camera
from core.render.gaussians import Gaussians

log = logging.getLogger(__name__)

#: The command-line executable inside a PyInstaller bundle (see build_exe.spec).
BUNDLED_CLI = "omg-avatar"


def warm_up() -> None:
    """Run every compiled kernel once on a tiny scene, with the dtypes real calls use, so numba
    compiles it now or loads it from its cache."""
    from core.render import cpu, zbuffer  # they ask this module which backend to use

    camera = Camera.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), width=16, height=16, focal_normalized=4.0)
    generator = torch.Generator().manual_seed(0)
    count = 8
    gaussians = Gaussians(
        means=(torch.rand(count, 3, generator=generator) - 0.5) * 0.2,
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(count, 1),
        scales=torch.full((count, 3), 0.02),
        opacities=torch.full((count,), 0.5),
        features=torch.rand(count, 3, generator=generator),
    )
    cpu.render_cpu(gaussians, camera, 0.0)
    triangle = np.array([[-0.1, -0.1, 0.0], [0.1, -0.1, 0.0], [0.0, 0.1, 0.0]])
    zbuffer.mesh_depth(triangle, np.array([[0, 1, 2]]), camera, backend="cpu")


def cached() -> bool:
    """Whether numba's on-disk cache holds every kernel, compiled from the current sources for
    this machine, so that the first call only loads it. Compiles nothing.

    numba has no public query for this; the check reads its cache index the way numba's own
    loader does, and answers False if numba's internals ever change (the kernels then compile
    in the background once more, which is slower but correct; a test watches for it).
    """
    try:
        return all(_has_cached_overload(kernel) for kernel in _cached_kernels())
    except Exception:  # noqa: BLE001 - numba internals changed: treat as not compiled
        log.debug("could not read numba's kernel cache", exc_info=True)
        return False


def _cached_kernels() -> list[CPUDispatcher]:
    """Every kernel compiled on its own (inlined helpers compile inside their callers)."""
    from core.render import cpu, zbuffer

    return [
        value
        for module in (cpu, zbuffer)
        for value in vars(module).values()
        if isinstance(value, CPUDispatcher)
        and isinstance(value._cache, FunctionCache)
        and value.targetoptions.get("inline", "never") == "never"
    ]


def _has_cached_overload(kernel: CPUDispatcher) -> bool:
    cache = kernel._cache
    _, machine, code = cache._index_key((), kernel.targetctx.codegen())
    return any(key[1:] == (machine, code) for key in cache._cache_file._load_index())


def warmup_command() -> list[str]:
    """``omg-avatar warmup`` for this installation (in a bundle: the bundled executable)."""
    if getattr(sys, "frozen", False):
        executable = Path(sys.executable).with_name(BUNDLED_CLI + Path(sys.executable).suffix)
        return [str(executable), "warmup"]
    return [sys.executable, "-m", "core.cli", "warmup"]


class BackgroundCompile:
    """``omg-avatar warmup`` in a child process; :attr:`running` until it ends.

    Nothing stops it early: a program that exits meanwhile leaves it to finish filling the
    cache (a few seconds more), so that the next start does not compile again.
    """

    def __init__(self):
        self._process = subprocess.Popen(
            warmup_command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="kernel-compile", daemon=True).start()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the process ended; False if it still runs after ``timeout`` seconds."""
        return self._done.wait(timeout)

    def _watch(self) -> None:
        _, errors = self._process.communicate()
        if self._process.returncode != 0:
            log.warning("compiling the cpu renderer failed (exit %s): %s", self._process.returncode,
                        errors.decode(errors="replace").strip()[-500:])
        self._done.set()


_background: BackgroundCompile | None = None


def start_background_compile() -> BackgroundCompile | None:
    """Compile the kernels in a background process unless they are cached (returns None) or a
    compile already runs (returns that one)."""
    global _background
    if _background is not None and _background.running:
        return _background
    if cached():
        return None
    _background = BackgroundCompile()
    return _background


def compiling() -> bool:
    """Whether a background compile is under way."""
    return _background is not None and _background.running


def host_backend() -> str:
    """The fastest renderer that runs on the host: ``cpu``, or ``reference`` while the cpu
    kernels compile in the background."""
    return "reference" if compiling() else "cpu"
