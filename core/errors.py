"""Typed errors that the CLI prints as one line and the app shows in a dialog.

Every error a user can cause (a bad photo, a missing model file, a face that is
not there) derives from :class:`OmgError`. Anything else is a bug.
"""

from __future__ import annotations


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


class FrameSourceError(OmgError):
    """A webcam or video cannot be opened."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
