"""Keeping MediaPipe's and TensorFlow Lite's native log lines off the terminal, once per process.

MediaPipe's C++ code logs through absl straight to file descriptor 2 (``W0000 00:00:...]
Feedback manager requires ...``, ``All log messages before absl::InitializeLog() ...``)
and TensorFlow Lite adds ``INFO: Created TensorFlow Lite XNNPACK delegate``; no
environment variable or Python setting reaches those loggers, and the lines would bury
our one-line errors. Redirecting fd 2 around each graph's start (the old way) raced when
two graphs started on two threads, and swallowed other threads' errors meanwhile.

:func:`filter_native_logs`, called once at start-up by the entry points, turns fd 2 into
a pipe read by a thread that drops those lines (logging them at DEBUG) and passes every
other line, unchanged, to the real stderr. At exit the process waits until the filter has
passed on everything written so far, so the last error line always arrives; fd 2 stays
the pipe, so graphs still shutting down cannot print past the filter. OpenCV's own log (``[ WARN:0@...]``) is
silenced through its API; its errors reach us as exceptions or failed reads.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

import cv2

log = logging.getLogger(__name__)

#: Lines of native loggers that carry no news for the user: absl's informational and
#: warning lines (``I0000`` / ``W0000 hh:mm:ss...``), absl's notice about its own
#: initialisation, and TensorFlow Lite's delegate messages. Errors (``E``, ``F``) pass.
NATIVE_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d\d"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|INFO: Created TensorFlow Lite)"
)
#: OpenCV's log level that prints nothing (cv::utils::logging::LOG_LEVEL_SILENT).
OPENCV_SILENT = 0
#: Seconds the exit handler waits for the filter thread to pass the last lines on.
DRAIN_TIMEOUT_S = 2.0

#: The line the exit handler sends through the pipe to learn when all before it is through.
_DRAINED = b"\x00omg-avatar: stderr drained\x00"

_lock = threading.Lock()
_drained: threading.Event | None = None  # the filter's (None: not installed), set on reading _DRAINED


def filter_native_logs() -> bool:
    """Filter fd 2 as the module docstring says, once; True if the filter is (now) in place.

    It stays off while something else has replaced ``sys.stderr`` (a test harness
    capturing output), and on platforms without ``os.pipe`` semantics for fd 2.
    """
    global _drained
    cv2.setLogLevel(OPENCV_SILENT)
    with _lock:
        if _drained is not None:
            return True
        if sys.stderr is not sys.__stderr__ or sys.stderr is None:
            return False
        try:
            sys.stderr.flush()
            real = os.dup(2)
            read_end, write_end = os.pipe()
            os.dup2(write_end, 2)
            os.close(write_end)
        except OSError:
            return False
        drained = threading.Event()
        reader = threading.Thread(target=_pass_on, args=(read_end, real, drained), name="native log filter",
                                  daemon=True)  # fmt: skip
        reader.start()
        _drained = drained
        atexit.register(drain_stderr)
        return True


def _pass_on(read_end: int, real: int, drained: threading.Event) -> None:
    """Copy lines from the pipe to the real stderr, dropping :data:`NATIVE_NOISE`; set
    ``drained`` on reading :data:`_DRAINED` (written by the exit handler)."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            _write(real, b"".join(line + b"\n" for line in lines if line != _DRAINED and not _noise(line)))
            if _DRAINED in lines:
                drained.set()


def _noise(line: bytes) -> bool:
    if NATIVE_NOISE.match(line):
        log.debug("native: %s", line.decode(errors="replace"))
        return True
    return False


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def drain_stderr() -> None:
    """Wait until the filter has passed on everything written to fd 2 so far (at exit, and
    before a process ends without the interpreter's shutdown); nothing to do without it."""
    if _drained is None:
        return
    _drained.clear()
    try:
        sys.stderr.flush()
        _write(2, _DRAINED + b"\n")
    except (OSError, ValueError):
        return
    _drained.wait(DRAIN_TIMEOUT_S)
