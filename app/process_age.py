"""Seconds since this process started, for the start-up time the app reports (the clock runs
from the moment the OS started the process, so imports and window creation count)."""

from __future__ import annotations

import os
import time

_IMPORTED = time.monotonic()


def process_age_s() -> float:
    """Seconds since the OS started this process (Linux: /proc; elsewhere since this module
    was imported, which the app does first thing)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time since boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started_s
    except (OSError, IndexError, ValueError, AttributeError):
        return time.monotonic() - _IMPORTED
