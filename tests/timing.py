"""Timing for the speed assertions, measured in a fresh interpreter (a test helper).

Earlier tests in the same pytest process leave state behind (thread pools, background
threads of the app's session, MediaPipe graphs) that can slow numba's parallel kernels
several-fold; a speed requirement is about the code, so it is measured in a clean process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_MEASURE = """
import statistics, time
{setup}
def _typical(run):
    run()  # compile or load the kernels from the cache, warm the caches
    medians = []
    for _ in range({rounds}):
        seconds = []
        for _ in range({repeats}):
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
        medians.append(statistics.median(seconds))
    return min(medians)
{runs}
"""


def typical_seconds(setup: str, statement: str, rounds: int = 3, repeats: int = 7) -> float:
    """The best of ``rounds`` medians of ``repeats`` runs of ``statement`` after ``setup``.

    The best median is robust to another process hogging the cores for a while.
    """
    return typical_seconds_each(setup, [statement], rounds, repeats)[0]


def typical_seconds_each(setup: str, statements: list[str], rounds: int = 3, repeats: int = 7) -> list[float]:
    """:func:`typical_seconds` of each of ``statements``, all in one fresh interpreter."""
    runs = "".join(f"print(_typical(lambda: {statement}))\n" for statement in statements)
    code = _MEASURE.format(setup=textwrap.dedent(setup), rounds=rounds, repeats=repeats, runs=runs)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    return [float(line) for line in result.stdout.strip().splitlines()[-len(statements):]]
