"""Typed errors that the CLI prints as one line and the app shows in a dialog.

Every error a user can cause (a bad photo, a missing model file, a face that is
not there) derives from :class:`OmgError`. Anything else is a bug.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


class OmgError(Exception):
    """Base of all user-facing errors. ``exit_code`` is the CLI's exit status."""

    exit_code = 2


class ConfigError(OmgError):
    """A configuration file is missing, malformed, or has unknown keys."""


class InputImageError(OmgError):
    """An image or video cannot be read or is unusable (corrupt, empty, too small)."""


class NoFaceError(OmgError):
    """No face was found where one is required."""

    def __init__(self, what: str = "the image"):
        super().__init__(f"no face found in {what}")


class ModelFileError(OmgError):
    """A model file (FLAME, landmark embedding, weights) is missing or malformed."""


class CheckpointError(ModelFileError):
    """A network checkpoint is unreadable, not an OMG-Avatar checkpoint, or does not fit the network."""


class FrameSourceError(OmgError):
    """A webcam or video cannot be opened."""


class OutputPathError(OmgError):
    """An output file cannot be written where it was asked for (a folder, a read-only place,
    one of the inputs)."""


#: A run ended by a signal exits with this plus the signal's number (the shells' convention).
SIGNAL_STATUS_BASE = 128


class Terminated(KeyboardInterrupt):
    """The process was asked to end by a signal (SIGTERM, SIGHUP): raised in the main thread
    so that every cleanup on the way out runs, as for Ctrl-C."""

    def __init__(self, signal_name: str, exit_code: int):
        super().__init__(signal_name)
        self.signal_name, self.exit_code = signal_name, exit_code


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def exit_status(prog: str, action: Callable[[], int]) -> int:
    """Run ``action`` and return its exit status; a user error (:class:`OmgError`) or an
    interrupt is printed as one line on stderr, prefixed with ``prog``, and ends with its
    exit status instead."""
    try:
        return action()
    except OmgError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        print(f"{prog}: terminated ({exc.signal_name})", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return SIGNAL_STATUS_BASE + signal.SIGINT
