"""The cpu kernels' first compile: the cache check, ``omg-avatar warmup``, and the background
compile with the torch paths standing in meanwhile. Each case runs in a fresh interpreter
with its own empty numba cache, as on a machine's very first start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Runs with an empty NUMBA_CACHE_DIR: start a background compile, render and depth-buffer
# while it runs, wait for it, render again, and report what happened as JSON.
_FIRST_START = """
import json, numpy as np, torch
from core.render import kernels, mesh_depth, render, resolve_backend
from core.render import cpu
from core.render.scenes import head_scene, portrait_camera

result = {"cached_before": kernels.cached()}
job = kernels.start_background_compile()
result["started"] = job is not None
result["auto_while_compiling"] = resolve_backend("auto")
scene, camera = head_scene(3000, 500), portrait_camera(128)
while_compiling = render(scene, camera, "auto")
triangle = np.array([[-0.1, -0.1, 1.0], [0.1, -0.1, 1.0], [0.0, 0.1, 1.0]])
depth = mesh_depth(triangle, np.array([[0, 1, 2]]), camera)
result["depth_type"] = f"{type(depth).__name__} {depth.dtype}"
result["still_compiling_after_render"] = kernels.compiling()
result["finished"] = job.wait(300)
result["auto_after"] = resolve_backend("auto")
result["cached_after"] = kernels.cached()
after = render(scene, camera, "auto")
result["blend_cache_hits"] = sum(cpu._blend.stats.cache_hits.values())
result["blend_cache_misses"] = sum(cpu._blend.stats.cache_misses.values())
result["max_difference"] = float((after.features - while_compiling.features).abs().max())
print(json.dumps(result))
"""


def _run_fresh(code: str, cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, *args] if args else [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_first_start_renders_with_torch_while_the_kernels_compile_in_the_background(tmp_path):
    run = _run_fresh(_FIRST_START, tmp_path / "numba")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["cached_before"] is False
    assert result["started"] is True
    assert result["auto_while_compiling"] == "reference"
    assert result["depth_type"] == "ndarray float32"  # numpy in, numpy out, on the torch path too
    assert result["still_compiling_after_render"] is True  # the reference render did not wait
    assert result["finished"] is True
    assert result["auto_after"] == "cpu"
    assert result["cached_after"] is True
    # The main process loaded what the background process compiled, and compiled nothing itself.
    assert result["blend_cache_hits"] >= 1 and result["blend_cache_misses"] == 0
    assert result["max_difference"] < 2e-3  # same image from both renderers


@pytest.fixture(scope="module")
def warmed_cache(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A numba cache filled by ``omg-avatar warmup`` from empty, and that first run."""
    cache = tmp_path_factory.mktemp("numba")
    return cache, _run_fresh("", cache, "-m", "core.cli", "warmup")


def test_warmup_compiles_once_then_loads_from_the_cache(warmed_cache):
    cache, first = warmed_cache
    assert first.returncode == 0, first.stderr
    assert "cpu kernels compiled" in first.stdout
    second = _run_fresh("", cache, "-m", "core.cli", "warmup")
    assert second.returncode == 0, second.stderr
    assert "cpu kernels loaded from the cache" in second.stdout
    check = _run_fresh("from core.render import kernels; print(kernels.cached(), kernels.start_background_compile())", cache)
    assert check.stdout.split() == ["True", "None"]  # cached: no background compile starts


def test_a_cache_from_other_sources_does_not_count(warmed_cache):
    """Editing a kernel's source invalidates numba's cache; the check must notice."""
    check = _run_fresh(
        """
        from core.render import cpu, kernels
        before = kernels.cached()
        cpu._blend._cache._cache_file._source_stamp = (0.0, 0)  # as if cpu.py had changed
        print(before, kernels.cached())
        """,
        warmed_cache[0],
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["True", "False"]


def test_process_age_counts_from_the_process_start():
    sleep_s = 0.4
    code = f"import time; time.sleep({sleep_s}); from app.process_age import process_age_s; print(process_age_s())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert sleep_s <= age < sleep_s + 5.0
