"""``reconstruct``: one photo to an :class:`~core.avatar.avatar.Avatar`, by a named method.

Methods share one signature, ``method(portrait, config, provenance, report) -> Avatar``;
``training-free`` is the embedded default (no weights needed). ``network``, the paper's
network, also takes its user files (:class:`~core.avatar.network_method.NetworkFiles`):
:func:`reconstruct` passes ``files`` to the methods that need files (:data:`FILE_METHODS`).
"""

from __future__ import annotations

import datetime
import hashlib
import threading
from collections.abc import Callable

import mediapipe
import numpy
import torch

from core import __version__
from core.avatar.avatar import Avatar
from core.avatar.network_method import NAME as NETWORK
from core.avatar.network_method import NetworkFiles, reconstruct_network
from core.avatar.training_free.method import NAME as TRAINING_FREE
from core.avatar.training_free.method import reconstruct_training_free
from core.config import Config, load_config
from core.errors import OmgError
from core.tracking.photo import Portrait

#: Reconstruction methods by name; the first is the default.
METHODS = {TRAINING_FREE: reconstruct_training_free, NETWORK: reconstruct_network}
DEFAULT_METHOD = TRAINING_FREE
#: Methods that read user files: they take a ``files`` argument as well.
FILE_METHODS = {NETWORK}

#: ``progress(fraction in [0, 1], message)``.
ProgressCallback = Callable[[float, str], None]


class UnknownMethodError(OmgError):
    """No reconstruction method of that name."""


class ReconstructionCancelled(OmgError):
    """The reconstruction was cancelled through its ``cancel`` event."""


def available_methods() -> list[str]:
    """Names of the reconstruction methods this installation can run, default first."""
    return list(METHODS)


def reconstruct(
    portrait: Portrait,
    method: str = DEFAULT_METHOD,
    config: Config | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    files: NetworkFiles | None = None,
) -> Avatar:
    """Reconstruct an avatar from a prepared portrait (``core.tracking.prepare_portrait``).

    Args:
        portrait: the photo's crop, landmarks and portrait mask.
        method: one of :func:`available_methods`.
        config: sizes and camera (default: the ``paper`` config).
        progress: called with the fraction done and what is happening, ending with 1.0.
        cancel: when set, the reconstruction stops at its next step with
            :class:`ReconstructionCancelled`.
        files: the network method's files (default: their default places); ignored by
            methods that need none.

    Raises:
        UnknownMethodError: ``method`` is not available.
        ReconstructionCancelled: ``cancel`` was set.
        ModelFileError: a file the method needs is missing or unreadable.
    """
    if method not in METHODS:
        raise UnknownMethodError(
            f"unknown reconstruction method '{method}': choose one of {', '.join(available_methods())}"
        )
    config = config or load_config()

    def report(fraction: float, message: str) -> None:
        if cancel is not None and cancel.is_set():
            raise ReconstructionCancelled("reconstruction cancelled")
        if progress is not None:
            progress(fraction, message)

    extra = {"files": files} if method in FILE_METHODS else {}
    avatar = METHODS[method](portrait, config, _provenance(portrait, method, config), report, **extra)
    report(1.0, "done")
    return avatar


def _provenance(portrait: Portrait, method: str, config: Config) -> dict:
    """Where an avatar comes from: photo (name, SHA-256 of its decoded RGB pixels, size),
    method, config, date and the versions that made it."""
    return {
        "photo": portrait.name,
        "photo_sha256": hashlib.sha256(portrait.image.tobytes()).hexdigest(),
        "photo_size": [int(portrait.image.shape[1]), int(portrait.image.shape[0])],
        "method": method,
        "config": config.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "omg-avatar": __version__,
            "numpy": numpy.__version__,
            "torch": torch.__version__,
            "mediapipe": mediapipe.__version__,
        },
    }
