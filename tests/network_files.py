"""The network method's user files, made without downloads (a test helper): a random-weight
checkpoint of the tiny config with 32 splat channels, the synthetic FLAME with its landmark
embedding (in a models folder laid out as ``models_dir()`` expects), and DINOv2 weights in
Meta's official format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import Config, load_config
from core.flame import FlameLayer, load_flame_model
from core.model import OmgAvatarNet
from core.model.backbone import DinoBackbone
from core.model.checkpoint import save_checkpoint
from core.tracking.photo import portrait_from_image, read_image
from synthetic_flame import make_synthetic_flame, write_flame_npz, write_landmark_embedding

#: The channels of the test network's features (GAGAvatar's and the paper's 32).
CHANNELS = 32


def network_config() -> Config:
    tiny = load_config("tiny")
    return dataclasses.replace(tiny, model=dataclasses.replace(tiny.model, splat_channels=CHANNELS))


@dataclass(frozen=True)
class WrittenFiles:
    """Paths of the files; ``models`` is the folder to use as ``$OMG_AVATAR_MODELS`` (it
    holds the landmark embedding where the config expects it)."""

    models: Path
    checkpoint: Path
    flame: Path
    dinov2: Path
    num_flame_vertices: int


def write_network_files(
    folder: Path, config: Config | None = None, face_landmarks: np.ndarray | None = None
) -> WrittenFiles:
    """The files for ``config`` (default :func:`network_config`); the synthetic FLAME's landmark
    embedding follows ``face_landmarks`` (MediaPipe points of a frontal face) when given, so
    that it fits real faces."""
    config = config or network_config()
    flame_file = write_flame_files(folder, config, face_landmarks)
    model = load_flame_model(flame_file)
    layer = FlameLayer(model, config.flame.n_shape, config.flame.n_expression)
    torch.manual_seed(0)
    backbone = DinoBackbone(config.model, None, random_init=True)
    dinov2 = folder / "dinov2_official.pth"
    torch.save({**backbone.vit.state_dict(), "mask_token": torch.randn(1, backbone.embed_dim)}, dinov2)
    checkpoint = save_checkpoint(OmgAvatarNet(config, layer, backbone), config, folder / "net.safetensors")
    return WrittenFiles(folder, checkpoint, flame_file, dinov2, model.v_template.shape[0])


def write_flame_files(folder: Path, config: Config, face_landmarks: np.ndarray | None = None) -> Path:
    """The synthetic FLAME (``folder/flame/synthetic_flame.npz``, returned) and its landmark
    embedding where ``config`` expects it in a models folder ``folder``; the embedding follows
    ``face_landmarks`` when given (see :func:`synthetic_flame.make_synthetic_flame`)."""
    synthetic = make_synthetic_flame(seed=0, face_landmarks=face_landmarks)
    (folder / "flame").mkdir(parents=True, exist_ok=True)
    flame_file = write_flame_npz(synthetic, folder / "flame" / "synthetic_flame.npz")
    write_landmark_embedding(synthetic, folder / config.flame.landmark_embedding_file)
    return flame_file


def frontal_face_landmarks(samples_dir: Path, config: Config) -> np.ndarray:
    """[478, 3] MediaPipe landmarks of the frontal sample portrait (einstein.jpg), in its pixels."""
    image = read_image(samples_dir / "photos" / "einstein.jpg")
    return portrait_from_image(image, "einstein.jpg", config.tracking).landmarks
