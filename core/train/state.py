"""The trainer's resumable checkpoint: one ``RUN_DIR/training_state.pt`` holding the released
network's learned weights (:func:`core.model.network_checkpoint.learned_state`: its state dict without
DINOv2 and FLAME), the optimiser and learning-rate scheduler states, the step, the data position
(epoch and batch within it, world size), the random generators (torch, CUDA, numpy, Python),
the config and the run's first logged values. Written atomically; read with
``torch.load(weights_only=True)``, so no pickled code runs. Version 1 was the state of an
earlier network (removed), which cannot be resumed.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import OmgError, first_line
from core.fileio import write_bytes_atomic

FORMAT = "omg-avatar-training"
VERSION = 2
EARLIER_NETWORK_VERSION = 1
FILE = "training_state.pt"


class TrainingStateError(OmgError):
    """A run folder's training state is missing, unreadable or of another run."""


def capture_rng() -> dict[str, Any]:
    """The states of every random generator the training may draw from."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (see the module docstring) atomically to ``run_dir/training_state.pt``."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    path = Path(run_dir) / FILE
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_state(run_dir: Path) -> dict[str, Any]:
    """The state :func:`save_state` wrote in ``run_dir``; :class:`TrainingStateError` otherwise."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        raise TrainingStateError(f"nothing to resume: {path} does not exist (train without --resume first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "not readable"
        raise TrainingStateError(f"{path}: not a readable training state ({first_line(exc)})") from None
    if isinstance(state, dict) and state.get("format") == FORMAT and state.get("version") == EARLIER_NETWORK_VERSION:
        raise TrainingStateError(f"{path}: a run of the earlier network, which cannot be resumed; train anew")
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        raise TrainingStateError(f"{path}: not an {FORMAT} file of version {VERSION}")
    return state
