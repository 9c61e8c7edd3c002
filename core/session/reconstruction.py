"""Building an avatar in the background: photo (or the demo portrait) -> portrait crop ->
``core.avatar.reconstruct``, with progress and cancel."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch

from core.avatar import Avatar, ReconstructionCancelled, reconstruct
from core.avatar.network_method import NetworkFiles
from core.config import Config
from core.errors import OmgError
from core.flame.files import RELEASE_FLAME_FILE
from core.model.release_checkpoint import RELEASE_CHECKPOINT_FILE
from core.paths import CHECKPOINT_DIR, CHECKPOINT_FILE, DINOV2_FILE, resolve_model_file
from core.tracking.photo import portrait_from_image, prepare_portrait

log = logging.getLogger(__name__)

#: Name of the built-in demo portrait: scikit-image's astronaut (Eileen Collins, NASA, public domain).
DEMO_PORTRAIT_NAME = "astronaut (demo)"
#: Share of the progress bar spent finding and framing the face, before the method starts.
PREPARATION_SHARE = 0.3


def demo_portrait_image() -> np.ndarray:
    """The built-in demo portrait as [512, 512, 3] uint8 RGB (installed with scikit-image)."""
    from skimage import data

    return data.astronaut()


def network_files_in_use(chosen: NetworkFiles) -> NetworkFiles:
    """The network method's files as a reconstruction looks for them: the ``chosen`` ones,
    else their default places in the models folder (the checkpoint: the release's
    ``omg_ckpt.pt``, or ours when only ours is there; DINOv2's is needed only when the
    checkpoint lacks its weights)."""
    release = resolve_model_file(f"{CHECKPOINT_DIR}/{RELEASE_CHECKPOINT_FILE}")
    ours = resolve_model_file(CHECKPOINT_FILE)
    checkpoint = ours if ours.is_file() and not release.is_file() else release
    return NetworkFiles(
        checkpoint=chosen.checkpoint or checkpoint,
        flame=chosen.flame or resolve_model_file(RELEASE_FLAME_FILE),
        dinov2=chosen.dinov2 or resolve_model_file(DINOV2_FILE),
    )


class ReconstructionJob:
    """Reconstructs one avatar on a background thread; poll ``done``, then read ``avatar``
    or ``error`` (``cancelled`` when :meth:`cancel` stopped it). ``files``: the network
    method's."""

    def __init__(self, photo: Path | None, method: str, config: Config, files: NetworkFiles | None = None):
        self.photo = photo
        self.method = method
        self.files = files
        self.name = photo.name if photo else DEMO_PORTRAIT_NAME
        self.progress = 0.0
        self.message = "starting"
        self.avatar: Avatar | None = None
        self.error: OmgError | None = None
        self.cancelled = False
        self.seconds = 0.0
        self._config = config
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconstruction", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds; True if the job has finished."""
        self._thread.join(timeout)
        return self.done

    def _report(self, fraction: float, message: str) -> None:
        self.progress = PREPARATION_SHARE + (1.0 - PREPARATION_SHARE) * float(fraction)
        self.message = message

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self.message = "finding the face"
            if self.photo is None:
                portrait = portrait_from_image(demo_portrait_image(), self.name, self._config.tracking)
            else:
                portrait = prepare_portrait(self.photo, self._config.tracking)
            if self._cancel.is_set():
                raise ReconstructionCancelled("reconstruction cancelled")
            self.progress = PREPARATION_SHARE
            with torch.inference_mode():
                self.avatar = reconstruct(portrait, self.method, self._config, self._report, self._cancel, self.files)
        except ReconstructionCancelled:
            self.cancelled = True
        except OmgError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - a bug, shown to the user rather than lost
            log.exception("reconstruction failed")
            self.error = OmgError(f"reconstruction failed unexpectedly: {exc}")
        finally:
            self.seconds = time.perf_counter() - started
