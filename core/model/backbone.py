"""The frozen DINOv2 ViT backbone: a photo to four token grids (local features) and the final
tokens (identity tokens of the global branch).

The ViT is built by timm from ``ModelConfig.backbone`` at ``backbone_image_size`` and its
weights come from a file the user downloads: Meta's official checkpoint
(``dinov2_vitb14_pretrain.pth``) or a timm-format state dict (``.safetensors``, ``.pth`` or
``.bin``). Both go through timm's own ``checkpoint_filter_fn``, which drops the official
``mask_token`` and resamples the position embedding to this image size. Random weights only
when asked for (tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor, nn

from core.config import ModelConfig
from core.errors import ConfigError, ModelFileError, first_line
from core.model.state_files import mismatch_report, read_state_dict
from core.paths import DINOV2_FILE, resolve_model_file

DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth"
INTERMEDIATE_LAYERS = 4


@dataclass(frozen=True)
class BackboneFeatures:
    """What the backbone sees in a batch of B images (h = w = image size // patch size, D = embed dim).

    Attributes:
        layers: 4 x [B, D, h, w] token grids of the last four blocks, shallow to deep,
            each normed by the ViT's final norm (DINOv2's ``get_intermediate_layers``).
        identity: [B, 1 + h * w, D] final normed tokens, class token first.
    """

    layers: list[Tensor]
    identity: Tensor


class DinoBackbone(nn.Module):
    """DINOv2 ViT, frozen: no parameter needs gradients, always in eval mode, never stored
    in network checkpoints (``frozen``; see :mod:`core.model.checkpoint`)."""

    frozen = True

    def __init__(self, model: ModelConfig, weights: Path | None, random_init: bool = False):
        """``weights``: the DINOv2 file, None for :data:`core.paths.DINOV2_FILE` in the models
        folder; ignored when ``random_init`` (tests only)."""
        super().__init__()
        if not timm.is_model(model.backbone):
            raise ConfigError(f"model.backbone: timm has no model '{model.backbone}' (e.g. vit_base_patch14_dinov2)")
        self.vit: VisionTransformer = timm.create_model(
            model.backbone, pretrained=False, img_size=model.backbone_image_size, num_classes=0
        )
        if not random_init:
            load_backbone_weights(self.vit, weights or resolve_model_file(DINOV2_FILE))
        self.vit.requires_grad_(False)
        self.embed_dim: int = self.vit.embed_dim
        self.layer_indices = last_blocks(len(self.vit.blocks))
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> DinoBackbone:
        """Stays in eval mode whatever ``mode`` the parent passes down."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, image: Tensor) -> BackboneFeatures:
        """image: [B, 3, S, S] RGB in [0, 1], S = ``backbone_image_size``."""
        final, layers = self.vit.forward_intermediates(
            (image - self.mean) / self.std, indices=self.layer_indices, norm=True, output_fmt="NCHW"
        )
        return BackboneFeatures(layers=layers, identity=final)


def last_blocks(depth: int) -> list[int]:
    """Zero-based indices of the blocks whose outputs the decoder reads: the last four (8 to 11
    for 12 blocks), as GAGAvatar's DINOv2 ``get_intermediate_layers(images, 4)``, which the
    paper follows (DPT itself spreads them evenly: 2, 5, 8, 11)."""
    return list(range(depth - INTERMEDIATE_LAYERS, depth))


def load_backbone_weights(model: VisionTransformer, path: Path) -> None:
    """Load Meta's official DINOv2 checkpoint or a timm-format state dict into ``model``,
    converted by timm's ``checkpoint_filter_fn``; every key and shape must then match."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"DINOv2 weights not found at {path}: download dinov2_vitb14_pretrain.pth from {DINOV2_URL} "
            f"(Meta's official ViT-B/14; timm's vit_base_patch14_dinov2.lvd142m model.safetensors works too) "
            f"and put it at {path}"
        )
    state = read_state_dict(path)
    try:
        state = checkpoint_filter_fn(state, model)
    except Exception as exc:  # the filter assumes a ViT state dict; anything else fails somewhere inside
        raise ModelFileError(f"{path.name}: not a ViT state dict timm can convert ({first_line(exc)})") from None
    problems = mismatch_report(model.state_dict(), state)
    if problems:
        architecture = model.pretrained_cfg["architecture"]
        header = f"{path.name}: does not fit {architecture} (a DINOv2 ViT of another size, or another model)"
        raise ModelFileError("\n".join([header, *problems]))
    model.load_state_dict(state)


