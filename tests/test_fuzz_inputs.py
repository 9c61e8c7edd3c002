"""Mutated avatars, PLY files, photos and videos (``tests/fuzz_inputs.py``) for a bounded time:
every one is read or refused with one error line, never a crash, a traceback, a file written
after a failure, or memory beyond a fixed budget."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fuzz_inputs import KINDS, MUTATIONS

FUZZ_SECONDS = 75.0
MEMORY_BUDGET_MB = 2048.0  # the set-up (torch, MediaPipe, one reconstruction) peaks near 1 GB
MIN_CASES = {"omg": 40, "ply": 200, "photo": 30, "video": 40}


@pytest.mark.slow
@pytest.mark.samples
def test_mutated_input_files_are_read_or_refused_cleanly(samples_dir, tmp_path):
    report_path = tmp_path / "fuzz.json"
    script = Path(__file__).with_name("fuzz_inputs.py")
    result = subprocess.run(
        [sys.executable, str(script), "--seconds", str(FUZZ_SECONDS), "--work", str(tmp_path / "work"),
         "--json", str(report_path)],
        capture_output=True, text=True, timeout=FUZZ_SECONDS + 120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    cases = report["cases"]
    print(f"\nfuzz (seed {report['seed']}): {len(cases)} cases, {report['counts']}, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB (after set-up {report['rss_after_setup_mb']:.0f} MB)")  # fmt: skip
    failed = [case for case in cases if case["outcome"] == "failed"]
    assert not failed, json.dumps(failed[:3], indent=1)
    tried = Counter((case["kind"], case["mutation"]) for case in cases)
    assert all(tried[(kind, mutation)] > 0 for kind in KINDS for mutation in MUTATIONS)
    for kind in KINDS:
        assert sum(1 for case in cases if case["kind"] == kind) >= MIN_CASES[kind], report["counts"]
        assert report["counts"][kind].get("refused", 0) > 0
    assert report["peak_rss_mb"] < MEMORY_BUDGET_MB
