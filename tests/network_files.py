"""The network method's user files, made without downloads (a test helper): the release's FLAME
bundle for the synthetic FLAME (``FLAME_with_eye.pt`` with its iBUG-68 landmark embedding,
``head_template_mesh.obj``, ``FLAME_masks.pkl``), a random-weight checkpoint of a tiny released
network in our format, and its DINOv2 weights in Meta's format, in a models folder laid out as
``models_dir()`` expects. Also the earlier FLAME files training still uses (``write_flame_files``)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import Config
from core.flame.ibug68 import MEDIAPIPE_OF_IBUG68
from core.model.network_checkpoint import save_network_checkpoint
from core.model.release_loading import BUNDLE_FILES, build_release_network
from core.model.release_network import ReleaseConfig
from core.tracking.photo import portrait_from_image, read_image
from synthetic_flame import (
    make_synthetic_flame,
    release_landmark_embedding,
    write_flame_npz,
    write_landmark_embedding,
    write_release_bundle,
)

#: A tiny released network (the paper's is ReleaseConfig()): 64 x 64 images and refiner.
TINY_NETWORK = ReleaseConfig(dim=32, transformer_layers=1, image_size=56, vit_dim=48, vit_depth=4, vit_heads=2,
                             refiner_size=64)  # fmt: skip
#: Share of the head's height at its bottom taken as the neck (FLAME's ``neck`` mask), and as its
#: open boundary (``boundary``).
NECK_SHARE, BOUNDARY_SHARE = 0.12, 0.04


@dataclass(frozen=True)
class WrittenFiles:
    """Paths of the files; ``models`` is the folder to use as ``$OMG_AVATAR_MODELS``."""

    models: Path
    checkpoint: Path
    flame: Path
    dinov2: Path
    num_flame_vertices: int
    config: ReleaseConfig


def write_network_files(folder: Path, face_landmarks: np.ndarray, config: ReleaseConfig = TINY_NETWORK) -> WrittenFiles:
    """The files for a network of ``config``; the FLAME's landmark embedding follows
    ``face_landmarks`` ([478, 3] MediaPipe points of a frontal face, e.g.
    :func:`frontal_face_landmarks`), so that the synthetic FLAME fits real faces."""
    flame_file = write_release_flame_bundle(folder / "flame", face_landmarks)
    torch.manual_seed(0)
    network = build_release_network(config, flame_file)
    checkpoint = save_network_checkpoint(network, folder / "checkpoints" / "omg_avatar.safetensors")
    dinov2 = folder / "dinov2" / "dinov2_vitb14_pretrain.pth"
    dinov2.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.base_dino_model.dino_model.state_dict(), dinov2)
    return WrittenFiles(folder, checkpoint, flame_file, dinov2, network.flame_model.num_vertices, config)


def write_release_flame_bundle(folder: Path, face_landmarks: np.ndarray, vertices: int | None = None) -> Path:
    """The synthetic FLAME as the release's bundle in ``folder`` (its landmark embedding laid on
    ``face_landmarks``; ``vertices``: FLAME's 5,023 for the paper's sizes, see
    :func:`synthetic_flame.make_synthetic_flame`); returns its ``FLAME_with_eye.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    synthetic = make_synthetic_flame(seed=0, vertices=vertices)
    embedding = release_landmark_embedding(synthetic, face_landmarks, MEDIAPIPE_OF_IBUG68)
    flame_file = write_release_bundle(synthetic, folder / BUNDLE_FILES["flame"], embedding)
    faces = synthetic.arrays["f"].astype(np.int64)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in synthetic.arrays["v_template"]]
    lines += [f"f {a} {b} {c}" for a, b, c in faces + 1]
    (folder / BUNDLE_FILES["topology"]).write_text("\n".join(lines) + "\n")
    heights = synthetic.arrays["v_template"][: synthetic.head_vertices, 1]
    bottom, span = heights.min(), heights.max() - heights.min()
    masks = {name: np.flatnonzero(heights < bottom + share * span).astype(np.int64)
             for name, share in (("neck", NECK_SHARE), ("boundary", BOUNDARY_SHARE))}  # fmt: skip
    (folder / BUNDLE_FILES["masks"]).write_bytes(pickle.dumps(masks, protocol=2))
    return flame_file


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
