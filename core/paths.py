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

#: The user's model files where they are looked for by default, relative to :func:`models_dir`
#: (the configs name FLAME's, its landmark embedding's and the perceptual LPIPS weights').
FLAME_DIR = "flame"
DINOV2_FILE = "dinov2/dinov2_vitb14_pretrain.pth"
#: Where Meta publishes that file (DINOv2 ViT-B/14, Apache-2.0).
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = f"{CHECKPOINT_DIR}/omg_avatar.safetensors"
LPIPS_FILE = "lpips/lpips_alex.safetensors"


def models_dir() -> Path:
    """Folder that holds the user's licence-gated or downloaded model files.

    ``$OMG_AVATAR_MODELS`` when set, else ``models/`` in the project root. Its layout:
    ``flame/generic_model.pkl`` (or ``flame/flame2023.pkl``),
    ``flame/mediapipe_landmark_embedding.npz``, ``dinov2/``, ``checkpoints/`` and ``lpips/``.
    """
    env = os.environ.get("OMG_AVATAR_MODELS")
    return Path(env).expanduser() if env else PROJECT_ROOT / "models"


def resolve_model_file(path: str | Path) -> Path:
    """A model file's path: absolute paths as given, relative ones (a config's, or one of the
    defaults above) inside :func:`models_dir`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else models_dir() / path
