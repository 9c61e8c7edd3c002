"""Ending a command on a signal without raising inside native code.

:func:`signals_end_the_run` turns SIGTERM and SIGHUP into :class:`~core.errors.Terminated`
(and Ctrl-C into ``KeyboardInterrupt``), raised in the main thread so every cleanup on the
way out runs. Python runs a signal's handler between two bytecodes of the main thread, which
may be Python code that a native call is running for: numba's compiled kernels box their
results through a Python helper, and an exception raised there comes back as a
``SystemError`` with the kernel's result half built. :func:`deferred` marks such calls: a
signal that arrives inside raises as the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from core.errors import SIGNAL_STATUS_BASE, Terminated

#: Signals that end a run as after Ctrl-C (those this platform has).
ENDING_SIGNALS = tuple(name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

_depth = 0  # how many deferred() blocks the main thread is in
_pending: KeyboardInterrupt | None = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal's exception that arrives in the block is raised when the block ends
    (nested blocks: the outermost). Elsewhere than in the main thread it does nothing."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            interrupt, _pending = _pending, None
            raise interrupt


def _raise_or_defer(interrupt: KeyboardInterrupt) -> None:
    global _pending
    if _depth == 0:
        raise interrupt
    _pending = _pending or interrupt


@contextlib.contextmanager
def signals_end_the_run() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`~core.errors.Terminated` and
    SIGINT ``KeyboardInterrupt``, outside :func:`deferred` blocks; a run ends as after
    Ctrl-C: every half-written output is removed, and the exit status is 128 + the signal's
    number. (Only from the main thread: elsewhere signals keep their handlers.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(number: int, frame: object) -> None:
        _raise_or_defer(Terminated(signal.Signals(number).name, SIGNAL_STATUS_BASE + number))

    def interrupt(number: int, frame: object) -> None:
        _raise_or_defer(KeyboardInterrupt())

    handlers = {getattr(signal, name): terminate for name in ENDING_SIGNALS}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored
        handlers[signal.SIGINT] = interrupt
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
