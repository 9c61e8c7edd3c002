"""The image encoder of the released OMG-Avatar (its ``DINOBase``, mounted in the network as
``base_dino_model``): a source photo to the local-feature plane and DINOv2's final tokens.

::

    photo [B, 3, S, S] in [0, 1] -> ImageNet normalisation
      -> DINOv2 ViT (``dino_model``, frozen): last four blocks, each after the final LayerNorm,
         class token dropped -> 4 x [B, T, D] (T = (S / 14)^2 = 1369 and D = 768 at S = 518)
      -> per block i: 1x1 conv (``projects``) to w_i = 256, 512, 1024, 1024 channels, resampled
         (``resize_layers``) to 4g, 2g, g, ceil(g / 2) (g = S / 14 = 37: 148, 74, 37, 19),
         the normalised photo resized to that size put in front (3 + w_i channels), 3x3 conv
         without bias to C (``layer_rn``)
      -> fusion coarse to fine (``refinenet``): 19 -> 37 -> 74 -> 148 -> 296
      -> 3x3 conv (``output_conv``) -> plane [B, C, P, P], P = 8g = 296, C = 256

Attribute names are the release's, so the module's state-dict keys are the release's keys
below ``base_dino_model.`` and its checkpoint loads by name; ``dino_model`` has the keys of
Meta's hub ``dinov2_vitb14``, so Meta's ``dinov2_vitb14_pretrain.pth`` loads into it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

#: timm's DINOv2 ViT: patch 14, LayerScale, LayerNorm eps 1e-6, the layout of Meta's model.
VIT_ARCHITECTURE = "vit_base_patch14_dinov2"
PATCH_SIZE = 14
#: ViT blocks read, the last ones (DINOv2's ``get_intermediate_layers(x, 4)``).
LAYERS_READ = 4
#: Channels after ``projects``, per block read, in units of the plane's channels C.
WIDTH_FACTORS = (1, 2, 4, 4)
#: The plane's side in patches: the finest fusion map (4 per patch) upsampled twice.
PLANE_PER_PATCH = 8


@dataclass(frozen=True)
class EncodedImage:
    """What :class:`DinoEncoder` makes of B photos (T tokens of D channels, see the module).

    Attributes:
        plane: [B, C, P, P] local-feature plane.
        layers: 4 x [B, T, D] tokens of the last four ViT blocks, shallow to deep, each after
            the final LayerNorm, without the class token; token t is patch (t // g, t % g).
    """

    plane: Tensor
    layers: list[Tensor]

    @property
    def tokens(self) -> Tensor:
        """[B, T, D] the last block's tokens: the memory of the query decoder."""
        return self.layers[-1]

    @property
    def first_token(self) -> Tensor:
        """[B, D] the last block's first *patch* token: the release's "global" output (taken
        after the class token was dropped), which its network never reads."""
        return self.layers[-1][:, 0]


class DinoEncoder(nn.Module):
    """Photos [B, 3, S, S] in [0, 1] -> :class:`EncodedImage` (see the module docstring).

    Args:
        image_size: S, a multiple of 14 (518 in the release: a 37 x 37 patch grid, plane 296).
        feature_dim: C, the plane's channels (256 in the release).
        vit_dim, vit_depth, vit_heads: the ViT's width, blocks and heads (ViT-B: 768, 12, 12;
            smaller for tests). Depth must be at least 4.
    """

    def __init__(
        self,
        image_size: int = 518,
        feature_dim: int = 256,
        vit_dim: int = 768,
        vit_depth: int = 12,
        vit_heads: int = 12,
    ) -> None:
        super().__init__()
        if image_size % PATCH_SIZE or vit_depth < LAYERS_READ:
            raise ValueError(f"image size {image_size} must be a multiple of {PATCH_SIZE}, depth {vit_depth} >= 4")
        self.plane_size = PLANE_PER_PATCH * image_size // PATCH_SIZE
        self.token_dim = vit_dim
        self.dino_model = dinov2_vit(image_size, vit_dim, vit_depth, vit_heads)
        widths = [factor * feature_dim for factor in WIDTH_FACTORS]
        self.projects = nn.ModuleList(nn.Conv2d(vit_dim, width, kernel_size=1) for width in widths)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(widths[0], widths[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(widths[1], widths[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(widths[3], widths[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.layer_rn = nn.ModuleList(
            nn.Conv2d(3 + width, feature_dim, kernel_size=3, padding=1, bias=False) for width in widths
        )
        self.refinenet = nn.ModuleList(FusionBlock(feature_dim) for _ in widths)  # coarse to fine
        self.output_conv = nn.Conv2d(feature_dim, feature_dim, kernel_size=3, padding=1)
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> EncodedImage:
        image = (image - self.mean) / self.std
        layers = self.dino_model.forward_intermediates(
            image, indices=LAYERS_READ, norm=True, output_fmt="NLC", intermediates_only=True
        )
        return EncodedImage(plane=self.decode(image, layers), layers=layers)

    def decode(self, image: Tensor, layers: list[Tensor]) -> Tensor:
        """The normalised photos [B, 3, S, S] and their 4 token layers [B, T, D] -> plane."""
        batch, grid = image.shape[0], image.shape[-1] // PATCH_SIZE
        maps = []  # finest (4g) first
        for tokens, project, resize, reduce in zip(layers, self.projects, self.resize_layers, self.layer_rn):
            features = resize(project(tokens.transpose(1, 2).reshape(batch, -1, grid, grid)))
            # The release lets each level see the photo at its own resolution.
            thumbnail = F.interpolate(image, size=features.shape[-2:], mode="bilinear", antialias=True)
            maps.append(reduce(torch.cat([thumbnail, features], dim=1)))
        coarse_to_fine = maps[::-1]
        sizes = [finer.shape[-2:] for finer in coarse_to_fine[1:]] + [(self.plane_size, self.plane_size)]
        fused = None
        for block, skip, size in zip(self.refinenet, coarse_to_fine, sizes):
            fused = block(skip, fused, size)
        return self.output_conv(fused)


def dinov2_vit(image_size: int, dim: int, depth: int, heads: int) -> VisionTransformer:
    """timm's DINOv2 ViT at ``image_size``, without classifier, frozen, plus Meta's
    ``mask_token`` [1, dim], so that its state-dict keys are those of Meta's hub model (the token
    only serves DINOv2's masked training: nothing here reads it)."""
    sizes = dict(embed_dim=dim, depth=depth, num_heads=heads)
    vit = timm.create_model(VIT_ARCHITECTURE, pretrained=False, img_size=image_size, num_classes=0, **sizes)
    vit.mask_token = nn.Parameter(torch.zeros(1, dim))
    return vit.requires_grad_(False)


class ResidualConvUnit(nn.Module):
    """x [B, C, H, W] -> x + conv2(relu(conv1(relu(x)))), 3x3 convs keeping the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """One fusion step: the skip map through ``resConfUnit1`` added to the coarser result,
    refined by ``resConfUnit2``, resized (bilinear, corners aligned), 1x1 ``out_conv``.
    The attribute names are the release's (its keys)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, skip: Tensor, coarser: Tensor | None, size: tuple[int, int]) -> Tensor:
        """skip: [B, C, H, W]; coarser: [B, C, H, W], None in the coarsest block, where the
        release passes the skip map straight on (``resConfUnit1``'s weights exist but are not
        used). Returns [B, C, *size]."""
        fused = skip if coarser is None else coarser + self.resConfUnit1(skip)
        fused = F.interpolate(self.resConfUnit2(fused), size=size, mode="bilinear", align_corners=True)
        return self.out_conv(fused)
