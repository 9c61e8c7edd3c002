"""A tiny training dataset in the layout of :mod:`core.dataset.layout` (a test helper).

Every clip is the synthetic FLAME with its own shape and colour tint, rendered by the
cpu backend as one small Gaussian per vertex (colour from the vertex's rest position,
so it moves with the face) on black; frames differ in expression, jaw and head pose (the
camera orbits, GAGAvatar's convention). Masks are the rendered alpha above one half.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from core.config import Config, load_config
from core.dataset.layout import write_clip, write_manifest
from core.flame import FlameLayer, load_flame_model
from core.geometry.camera import Camera
from core.geometry.mesh import mean_edge_lengths
from core.model.posing import FlameCoefficients, HeadPoser
from core.render import render
from core.render.gaussians import Gaussians
from synthetic_flame import make_synthetic_flame, write_flame_npz


def train_config(**training) -> Config:
    """The tiny config for training tests: levels 0 and 1 only (the reference renderer is slow
    at level 2), no perceptual term, and any ``training`` fields given."""
    tiny = load_config("tiny")
    defaults = {"lod_schedule": [0.0, 0.5, 1.0], "perceptual_weights": ""}
    return dataclasses.replace(tiny, training=dataclasses.replace(tiny.training, **{**defaults, **training}))


def write_flame(folder: Path) -> Path:
    """The synthetic FLAME as an ``.npz`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_flame_npz(make_synthetic_flame(seed=0), folder / "flame.npz")


def flame_layer(path: Path, config: Config) -> FlameLayer:
    return FlameLayer(load_flame_model(path), config.flame.n_shape, config.flame.n_expression)


def write_synthetic_dataset(
    root: Path, config: Config, flame: FlameLayer, clips: int = 5, frames: int = 4, seed: int = 0
) -> Path:
    """Write ``clips`` clips of ``frames`` frames at ``config.image_size`` under ``root``;
    the validation split holds at least one clip. Returns ``root``."""
    poser = HeadPoser(flame, config.flame.scale)
    rest = flame.v_template.double().numpy()
    faces = flame.faces.numpy()
    unit = (rest - rest.mean(0)) / np.abs(rest - rest.mean(0)).max(0)  # [-1, 1] per axis
    base_colour = 0.5 + 0.4 * unit[:, [0, 1, 2]] * np.array([1.0, -1.0, 1.0])
    spacing = mean_edge_lengths(rest * config.flame.scale, faces)
    rng = np.random.default_rng(seed)
    counts = {}
    for clip in range(clips):
        tint = rng.uniform(0.5, 1.0, 3)
        shape = 0.5 * rng.standard_normal(config.flame.n_shape)
        images, masks, params = [], [], {key: [] for key in ("shape", "expression", "jaw", "K", "R", "t")}
        for _ in range(frames):
            expression = rng.standard_normal(config.flame.n_expression)
            jaw = np.array([rng.uniform(0.0, 0.25), 0.0, 0.0])
            camera = Camera.orbit(
                (0, 0, 0), rng.uniform(-15, 15), rng.uniform(-8, 8), config.camera.distance,
                config.image_size, config.image_size, config.camera.focal_normalized,
            )  # fmt: skip
            coefficients = FlameCoefficients(
                expression=torch.tensor(expression[None], dtype=torch.float32),
                jaw=torch.tensor(jaw[None], dtype=torch.float32),
            )
            with torch.no_grad():
                vertices = poser(torch.tensor(shape[None], dtype=torch.float32), None, coefficients)[0]
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
