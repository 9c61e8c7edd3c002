"""Waiting in tests for something to happen, up to a timeout (a test helper).

A fixed sleep is too short on a busy machine (a flaky test) and needlessly long on an idle
one; these return as soon as the condition holds and fail, naming what was awaited, only
after a timeout that a working program never reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds :func:`wait_until` sleeps between checks when no ``step`` is given.
POLL_S = 0.01


def wait_until(condition: Callable[[], object], timeout_s: float, what: str,
               step: Callable[[], object] | None = None) -> None:
    """Call ``step`` (default: a short sleep) until ``condition()`` is true; fail after
    ``timeout_s`` seconds with a message naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        if step is None:
            time.sleep(POLL_S)
        else:
            step()


def wait_for(poll: Callable[[], T | None], timeout_s: float, what: str,
             step: Callable[[], object] | None = None) -> T:
    """The first result of ``poll()`` that is not None (see :func:`wait_until`)."""
    results: list[T | None] = [None]

    def arrived() -> bool:
        results[0] = poll()
        return results[0] is not None

    wait_until(arrived, timeout_s, what, step)
    return results[0]
