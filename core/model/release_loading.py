"""The released network with a checkpoint's weights and a FLAME bundle's model.

The bundle folder holds what the release reads beside its checkpoint: ``FLAME_with_eye.pt``
(FLAME), ``head_template_mesh.obj`` (the topology) and ``FLAME_masks.pkl`` (its ``neck`` and
``boundary`` vertices). The checkpoint (:mod:`core.model.release_checkpoint`) gives the sizes and
the learned weights, and, when it carries them, DINOv2's; else Meta's DINOv2 file does. FLAME's
buffers always come from the bundle (a checkpoint's are only shape-checked). The checkpoint is
the release's ``omg_ckpt.pt`` or our own safetensors (:mod:`core.model.network_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

from core.errors import CheckpointError, ModelFileError
from core.flame.bundle import NECK_MASKS, load_flame_masks, load_template_faces
from core.flame.files import load_flame_model
from core.flame.release_state import ReleaseFlameModel
from core.model.network_checkpoint import read_network_checkpoint
from core.model.release_checkpoint import (
    DINO_PREFIX,
    classify_keys,
    is_flame_buffer,
    require_dinov2_file,
)
from core.model.release_network import ReleaseConfig, ReleaseNetwork
from core.model.state_files import mismatch_report, read_state_dict

POSITION_EMBEDDING = "pos_embed"
BUNDLE_FILES = {"flame": "FLAME_with_eye.pt", "topology": "head_template_mesh.obj", "masks": "FLAME_masks.pkl"}


def build_release_network(config: ReleaseConfig, bundle: str | Path) -> ReleaseNetwork:
    """The network of ``config`` on the FLAME of ``bundle`` (weights as constructed): a bundle
    folder, or a FLAME file with the bundle's topology and masks beside it."""
    flame_file = bundle_flame_file(bundle)
    flame = ReleaseFlameModel(load_flame_model(flame_file))
    faces = load_template_faces(flame_file.parent / BUNDLE_FILES["topology"], flame.num_vertices)
    masks = load_flame_masks(flame_file.parent / BUNDLE_FILES["masks"], n_vertices=flame.num_vertices)
    neck = np.concatenate([masks[name] for name in NECK_MASKS])
    return ReleaseNetwork(config, flame, faces, neck)


def bundle_flame_file(bundle: str | Path) -> Path:
    """The FLAME file of ``bundle``: the folder's ``FLAME_with_eye.pt``, or the file itself."""
    bundle = Path(bundle)
    return bundle / BUNDLE_FILES["flame"] if bundle.is_dir() else bundle


def load_release_network(checkpoint: str | Path, bundle: str | Path, dinov2: str | Path | None = None) -> ReleaseNetwork:
    """The released network with the weights of ``checkpoint`` (either format) on the FLAME of
    ``bundle``, in eval mode. ``dinov2``: Meta's DINOv2 file, used only when the checkpoint lacks
    DINOv2's weights (default: its place in the models folder).

    Raises:
        CheckpointError / ModelFileError: one line, for a file that is unreadable or does not fit.
    """
    release = read_network_checkpoint(checkpoint)
    network = build_release_network(release.sizes, bundle)
    report = classify_keys(release.model, network.state_dict())
    problem = report.problem(release.file.name)
    if problem:
        raise CheckpointError(problem)
    dinov2_file = require_dinov2_file(report, dinov2)
    learned = {key: value for key, value in release.model.items() if key not in report.ignored
               and not is_flame_buffer(key)}  # fmt: skip
    with torch.no_grad():
        network.load_state_dict(learned, strict=False)  # classify_keys checked every key and shape
    if dinov2_file is not None:
        load_dinov2(network.base_dino_model.dino_model, dinov2_file)
    return network.eval()


def load_dinov2(vit: VisionTransformer, path: Path) -> None:
    """Meta's DINOv2 state dict into ``vit`` (the encoder's ViT, whose keys are Meta's), its
    position embedding resampled to ``vit``'s patch grid when the file's is another size (Meta's
    is 518 px); one-line CheckpointError when the file does not fit, ModelFileError when it is
    not there."""
    path = path.expanduser()
    if not path.is_file():
        raise ModelFileError(
            f"DINOv2 weights not found at {path}: Meta's dinov2_vitb14_pretrain.pth (for the config's "
            "backbone size); give it with --dinov2 or put it there"
        )
    state = read_state_dict(path)
    wanted = vit.state_dict()[POSITION_EMBEDDING]
    given = state.get(POSITION_EMBEDDING)
    if given is not None and given.ndim == 3 and given.shape[-1] == wanted.shape[-1] and given.shape != wanted.shape:
        grid = round((wanted.shape[1] - 1) ** 0.5)
        state[POSITION_EMBEDDING] = resample_abs_pos_embed(given, [grid, grid], num_prefix_tokens=1)
    problems = [line.strip() for line in mismatch_report(vit.state_dict(), state)]
    if problems:
        raise CheckpointError(
            f"{path.name}: does not fit the config's DINOv2 ViT ({DINO_PREFIX}*): {' '.join(problems[:2])}"
        )
    vit.load_state_dict(state)
