"""A tiny training dataset in the layout of :mod:`core.dataset.layout` (a test helper).

Every clip is the synthetic FLAME (the release's bundle, :func:`write_flame`) with its own shape
and colour tint, posed by the release's FLAME and rendered by the cpu backend as one small
Gaussian per vertex (colour from the vertex's rest position, so it moves with the face) on
black; frames differ in expression, jaw and head pose (the camera orbits: GAGAvatar's
convention, the release's focal 12). Masks are the rendered alpha above one half.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from core.config import Config, load_config
from core.dataset.layout import write_clip, write_manifest
from core.flame.release import ReleaseFlame, load_release_flame
from core.geometry.camera import Camera
from core.geometry.mesh import mean_edge_lengths
from core.render import render
from core.render.gaussians import Gaussians
from network_files import write_release_flame_bundle

#: Expression components the frames vary (the release's FLAME takes 100).
EXPRESSIONS = 20


def train_config(**training) -> Config:
    """The tiny config for training tests: levels 0 and 1 only (the reference renderer is slow
    at level 2), a 32 px render (the released refiner's 64 px step is 4x slower: its widths are
    those of the deep levels of the paper's 512 px one), no perceptual term, and any ``training``
    fields given."""
    tiny = load_config("tiny")
    defaults = {"lod_schedule": [0.0, 0.5, 1.0], "perceptual_weights": ""}
    return dataclasses.replace(
        tiny,
        model=dataclasses.replace(tiny.model, render_size=32),
        training=dataclasses.replace(tiny.training, **{**defaults, **training}),
    )


def synthetic_face_landmarks(seed: int = 0) -> np.ndarray:
    """[478, 3] stand-in MediaPipe pixels of a frontal face: random points over the face with the
    iris centres (468: the subject's right, on the image's left) level and 60 px apart. Enough
    for a FLAME bundle that only training uses (fitting real faces needs a real face's)."""
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-45, 45, 478), rng.uniform(-40, 70, 478), rng.uniform(-10, 10, 478)])
    points[468], points[473] = (-30.0, 0.0, 0.0), (30.0, 0.0, 0.0)
    return points + np.array([256.0, 256.0, 0.0])


def write_flame(folder: Path, face_landmarks: np.ndarray | None = None) -> Path:
    """The synthetic FLAME as the release's bundle in ``folder``; returns its ``FLAME_with_eye.pt``."""
    landmarks = synthetic_face_landmarks() if face_landmarks is None else face_landmarks
    return write_release_flame_bundle(folder, landmarks)


def write_synthetic_dataset(
    root: Path, config: Config, flame_file: Path, clips: int = 5, frames: int = 4, seed: int = 0
) -> Path:
    """Write ``clips`` clips of ``frames`` frames at ``config.image_size`` under ``root``;
    the validation split holds at least one clip. Returns ``root``."""
    flame = load_release_flame(flame_file)
    rest = flame.v_template.double().numpy()
    unit = (rest - rest.mean(0)) / np.abs(rest - rest.mean(0)).max(0)  # [-1, 1] per axis
    base_colour = 0.5 + 0.4 * unit[:, [0, 1, 2]] * np.array([1.0, -1.0, 1.0])
    spacing = mean_edge_lengths(rest * config.flame.scale, flame.faces.numpy())
    rng = np.random.default_rng(seed)
    counts = {}
    for clip in range(clips):
        tint = rng.uniform(0.5, 1.0, 3)
        shape = 0.5 * rng.standard_normal(flame.n_shape)
        images, masks, params = [], [], {key: [] for key in ("shape", "expression", "jaw", "K", "R", "t")}
        for _ in range(frames):
            expression = rng.standard_normal(EXPRESSIONS)
            jaw = np.array([rng.uniform(0.0, 0.25), 0.0, 0.0])
            camera = Camera.orbit(
                (0, 0, 0), rng.uniform(-15, 15), rng.uniform(-8, 8), config.camera.distance,
                config.image_size, config.image_size, config.camera.focal_normalized,
            )  # fmt: skip
            vertices = _posed(flame, shape, expression, jaw)
            count = len(vertices)
            gaussians = Gaussians(
                means=vertices,
                quats=torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(count, 1),
                scales=torch.tensor(spacing, dtype=torch.float32)[:, None].repeat(1, 3) * 0.6,
                opacities=torch.full((count,), 0.95),
                features=torch.tensor(np.clip(base_colour * tint, 0, 1), dtype=torch.float32),
            )
            out = render(gaussians, camera, backend="cpu")
            images.append((out.features.clamp(0, 1).numpy() * 255).round().astype(np.uint8))
            masks.append(((out.alpha.numpy() > 0.5) * 255).astype(np.uint8))
            for key, value in (("shape", shape), ("expression", expression), ("jaw", jaw),
                               ("K", camera.K), ("R", camera.R), ("t", camera.t)):  # fmt: skip
                params[key].append(value)
        name = f"clip_{clip:03d}"
        arrays = {key: np.stack(values) for key, values in params.items()}
        write_clip(root / "clips" / name, np.stack(images), np.stack(masks), arrays)
        counts[name] = frames
    write_manifest(root, counts, validation_fraction=0.2, seed=seed)
    return root


def _posed(flame: ReleaseFlame, shape: np.ndarray, expression: np.ndarray, jaw: np.ndarray) -> torch.Tensor:
    """[V, 3] world vertices of the release's FLAME: global rotation zero, ``jaw``, eyes still."""
    expressions = np.zeros(flame.n_expression)
    expressions[: len(expression)] = expression
    pose = np.concatenate([np.zeros(3), jaw])

    def batch(values: np.ndarray) -> torch.Tensor:
        return torch.tensor(values[None], dtype=torch.float32)

    with torch.no_grad():
        return flame(batch(shape), batch(expressions), batch(pose), torch.zeros(1, 6))[0]
