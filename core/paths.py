"""Where the project finds its own assets and the user's optional model files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: The checkout (or, in a PyInstaller build, the unpacked bundle that holds assets/).
PROJECT_ROOT = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))
ASSETS_DIR = PROJECT_ROOT / "assets"
CONFIG_DIR = ASSETS_DIR / "configs"

#: Shared sample media of the development checkout (never copied into the repository).
SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "samples"


def models_dir() -> Path:
    """Folder that holds the user's licence-gated or downloaded model files.

    ``$OMG_AVATAR_MODELS`` when set, else ``models/`` in the project root. Its layout:
    ``flame/generic_model.pkl`` (or ``flame/flame2023.pkl``),
    ``flame/mediapipe_landmark_embedding.npz``, ``dinov2/`` and ``checkpoints/``.
    """
    env = os.environ.get("OMG_AVATAR_MODELS")
    return Path(env).expanduser() if env else PROJECT_ROOT / "models"
