"""The network training trains: the released OMG-Avatar network
(:class:`~core.model.release_network.ReleaseNetwork`) sized by the project config, with its
frozen parts from the user's files, and what it renders.

The config's sizes map to the network's by
:func:`core.model.release_network.release_config`. Three config values
size nothing in the released network: ``model.splat_channels`` (it always splats 32),
``model.feature_plane_size`` (its plane is 8/14 of the image side) and ``model.global_heads``
(its query decoder has 8 heads); :func:`ignored_sizes` names those that disagree.

Frozen: FLAME, from the release's bundle (``FLAME_with_eye.pt`` with ``head_template_mesh.obj``
and ``FLAME_masks.pkl`` beside it), and DINOv2, from Meta's file (``dinov2_vitb14_pretrain.pth``,
its position embedding resampled to the image size when it differs). They are not in the
optimiser and not in the learned state (:func:`core.model.network_checkpoint.learned_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from core.config import Config
from core.errors import ModelFileError
from core.flame.files import RELEASE_FLAME_FILE
from core.model.gaussian_generators import COLOR_CHANNELS
from core.model.release_gaussians import ReleaseGaussians
from core.model.release_loading import BUNDLE_FILES, build_release_network, load_dinov2
from core.model.release_network import ReleaseNetwork, release_config
from core.paths import DINOV2_FILE, resolve_model_file
from core.render import Gaussians
from core.render.projection import drawn_covariance


@dataclass(frozen=True)
class ModelFiles:
    """The network's frozen parts; None: the default place in the models folder (the release's
    ``flame/FLAME_with_eye.pt``, Meta's ``dinov2/dinov2_vitb14_pretrain.pth``).
    ``random_dinov2``: random backbone weights (tests only)."""

    flame: Path | None = None
    dinov2: Path | None = None
    random_dinov2: bool = False


def ignored_sizes(config: Config, network: ReleaseNetwork) -> list[str]:
    """The config values that size nothing in ``network`` and disagree with what it has."""
    model = config.model
    heads = network.transformer.decoder.layers[0].self_attn.num_heads
    used = {
        "splat_channels": (COLOR_CHANNELS, "splatted channels"),
        "feature_plane_size": (network.config.plane_size, "feature plane side"),
        "global_heads": (heads, "query decoder heads"),
    }
    return [f"model.{name} {getattr(model, name)} (the network's {what}: {value})"
            for name, (value, what) in used.items() if getattr(model, name) != value]  # fmt: skip


def build_network(config: Config, files: ModelFiles) -> ReleaseNetwork:
    """The network of ``config`` with FLAME and DINOv2 from ``files``, weights as constructed
    otherwise (seeded by the caller); a missing file is a one-line ModelFileError."""
    flame = Path(files.flame).expanduser() if files.flame else resolve_model_file(RELEASE_FLAME_FILE)
    if not flame.is_file():
        raise ModelFileError(
            f"FLAME model not found at {flame}: the OMG-Avatar release's {BUNDLE_FILES['flame']} with "
            f"{BUNDLE_FILES['topology']} and {BUNDLE_FILES['masks']} beside it; give it with --flame"
        )
    network = build_release_network(release_config(config), flame)
    if not files.random_dinov2:
        load_dinov2(network.base_dino_model.dino_model, Path(files.dinov2 or resolve_model_file(DINOV2_FILE)))
    return network


def drawn_gaussians(gaussians: ReleaseGaussians, index: int) -> tuple[Gaussians, Tensor]:
    """Image ``index``'s Gaussians, float32, and the [N, 3, 3] covariances the release's
    rasteriser draws from their raw quaternions (:func:`~core.render.projection.drawn_covariance`;
    the shoulders' are unit already). The quaternions stay raw: only the covariances are drawn."""
    g = Gaussians(
        gaussians.xyz[index], gaussians.rotations[index], gaussians.scales[index],
        gaussians.opacities[index, :, 0], gaussians.colors[index],
    ).to(dtype=torch.float32)  # fmt: skip
    return g, drawn_covariance(g.quats, g.scales)

