"""MediaPipe's native log lines are filtered out of fd 2 once per process; our own lines,
from any thread and up to the last one before exit, always come through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.tracking.native_log import NATIVE_NOISE

PROJECT = Path(__file__).resolve().parents[1]

#: Two graphs start on two threads while the main thread writes, then both see a face.
SCRIPT = """
import sys, threading
import cv2
from core.config import load_config
from core.tracking.face_mesh import FaceMesh
from core.tracking.native_log import filter_native_logs
if {filtered}:
    assert filter_native_logs()
config = load_config("paper").tracking
meshes = []
threads = [threading.Thread(target=lambda: meshes.append(FaceMesh(config, static=False))) for _ in range(2)]
for thread in threads:
    thread.start()
print("while the graphs start", file=sys.stderr, flush=True)
for thread in threads:
    thread.join()
photo = cv2.cvtColor(cv2.imread({photo!r}), cv2.COLOR_BGR2RGB)
assert all(mesh.detect(photo) is not None for mesh in meshes)
print("the last line before exit", file=sys.stderr)
sys.exit(2)
"""


def _stderr_lines(samples_dir: Path, filtered: bool) -> list[str]:
    code = SCRIPT.format(filtered=filtered, photo=str(samples_dir / "photos" / "einstein.jpg"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT)
    assert result.returncode == 2, result.stderr
    return result.stderr.splitlines()


@pytest.mark.samples
def test_native_lines_are_dropped_and_ours_all_arrive(samples_dir):
    unfiltered = _stderr_lines(samples_dir, filtered=False)
    assert any(NATIVE_NOISE.match(line.encode()) for line in unfiltered)  # MediaPipe does log: not vacuous
    assert _stderr_lines(samples_dir, filtered=True) == ["while the graphs start", "the last line before exit"]
