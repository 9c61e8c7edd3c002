"""The ``network`` reconstruction method: the paper's OMG-Avatar network on one portrait.

    portrait -> FLAME fitted to its landmarks (shape, expression, jaw, eyes, head pose)
             -> OmgAvatarNet.encode once, every level of detail (head pose as the camera's
                extrinsic, GAGAvatar's convention)
             -> Avatar: the encoding's head attributes per LOD and shoulders, a FLAME rig
                (shape, learned offsets, the source's articulation) and the neural refiner

It needs three user files (:class:`NetworkFiles`) plus FLAME's MediaPipe landmark
embedding; all are checked before any heavy work, and one :class:`ModelFileError` line
names every missing one and where it goes. The checkpoint's config sizes the network
(model, LOD levels, FLAME components and scale, image size, camera): it wins over the
config passed in, which still gives the tracking and fitting settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from core.avatar.avatar import Avatar, HeadLod, HeadRig
from core.avatar.flame_rig import FlamePose, FlameRig
from core.avatar.training_free.lifting import lift_landmarks
from core.avatar.training_free.method import Report
from core.config import Config
from core.errors import ModelFileError
from core.flame import load_flame_layer
from core.flame.files import FLAME_SITE
from core.geometry.camera import Camera
from core.model.backbone import DINOV2_URL, DinoBackbone
from core.model.checkpoint import load_strict, read_checkpoint
from core.model.network import OmgAvatarNet, SourceEncoding
from core.paths import CHECKPOINT_FILE, DINOV2_FILE, resolve_model_file
from core.tracking.flame_tracking import fit_photo
from core.tracking.photo import Portrait

NAME = "network"
#: FLAME's root joint (a vertex's skinning weight on it is the share of the head's motion
#: it does not follow: the rig's rigidity is one minus it) and its neck joint (the pivot).
ROOT_JOINT, NECK_JOINT = 0, 1


@dataclass(frozen=True)
class NetworkFiles:
    """The network method's user files; None: the default place.

    Attributes:
        checkpoint: network weights (default ``<models>/checkpoints/omg_avatar.safetensors``).
        flame: FLAME model (default the config's ``flame.model_file``).
        dinov2: DINOv2 ViT-B/14 weights (default ``<models>/dinov2/dinov2_vitb14_pretrain.pth``).
    """

    checkpoint: Path | None = None
    flame: Path | None = None
    dinov2: Path | None = None


@dataclass(frozen=True)
class _Resolved:
    checkpoint: Path
    flame: Path
    embedding: Path
    dinov2: Path


def check_files(files: NetworkFiles, config: Config) -> _Resolved:
    """The files to use, all present; else ModelFileError, one line naming each missing file."""
    resolved = _Resolved(
        checkpoint=Path(files.checkpoint or resolve_model_file(CHECKPOINT_FILE)).expanduser(),
        flame=Path(files.flame or resolve_model_file(config.flame.model_file)).expanduser(),
        embedding=resolve_model_file(config.flame.landmark_embedding_file),
        dinov2=Path(files.dinov2 or resolve_model_file(DINOV2_FILE)).expanduser(),
    )
    wanted = (
        (resolved.checkpoint, "network checkpoint", "give it with --checkpoint or put it there"),
        (resolved.flame, "FLAME model", f"licensed from {FLAME_SITE}; give it with --flame or put it there"),
        (resolved.embedding, "FLAME MediaPipe landmark embedding", f"from {FLAME_SITE}; put it there"),
        (resolved.dinov2, "DINOv2 weights", f"from {DINOV2_URL}; give them with --dinov2 or put them there"),
    )
    missing = [f"{what} {path} ({where})" for path, what, where in wanted if not path.is_file()]
    if missing:
        raise ModelFileError(f"the network method needs {len(missing)} missing file(s): " + "; ".join(missing))
    return resolved


def reconstruct_network(
    portrait: Portrait, config: Config, provenance: dict, report: Report, files: NetworkFiles | None = None
) -> Avatar:
    """An avatar of ``portrait`` by the network (see the module docstring); ``report(fraction,
    message)`` gives progress (and stops the work by raising when cancelled)."""
    found = check_files(files or NetworkFiles(), config)
    report(0.0, "loading the network checkpoint")
    state, net_config = read_checkpoint(found.checkpoint)
    report(0.05, "loading FLAME")
    layer = load_flame_layer(found.flame, net_config.flame, found.embedding)
    report(0.1, "loading DINOv2")
    net = OmgAvatarNet(net_config, layer, DinoBackbone(net_config.model, found.dinov2))
    load_strict(net, state, found.checkpoint.name)
    net.eval()

    report(0.3, "fitting FLAME to the photo")
    crop_size = portrait.crop.image.shape[0]
    fitting_config = dataclasses.replace(config, camera=net_config.camera, flame=net_config.flame)
    fit, crop_camera = fit_photo(layer, fitting_config, portrait.crop.landmarks, crop_size)

    report(0.45, "encoding every level of detail")
    source = FlamePose.from_fit(fit)
    coefficients = dataclasses.replace(
        source.coefficients(layer.n_expression, layer.has_eyelids),
        shape=torch.as_tensor(fit.shape[None], dtype=torch.float32),
    )
    with torch.no_grad():
        encoding = net.encode(
            _image(portrait.crop.image, net_config.image_size),
            coefficients,
            torch.from_numpy(portrait.mask.astype(np.float32))[None, None],
            [crop_camera.resized(net_config.image_size, net_config.image_size)],
        )
        vertices = net.poser(encoding.shape, encoding.offsets, coefficients)[0].numpy()
        joints = layer(shape=encoding.shape)[1][0].numpy() * net_config.flame.scale

    report(0.9, "assembling the avatar")
    lifted = lift_landmarks(portrait.crop.landmarks, crop_size, net_config.camera, net_config.flame.scale)
    rig = HeadRig(
        vertices=vertices,
        faces=layer.faces.numpy(),
        binding=sp.csr_matrix((len(vertices), len(lifted.points))),  # expressions come from FLAME
        rigidity=1.0 - layer.lbs_weights[:, ROOT_JOINT].numpy(),
        landmarks=_moved_to(lifted.points, lifted.camera, crop_camera),
        pivot=joints[NECK_JOINT],
        centre=(vertices.min(axis=0) + vertices.max(axis=0)) / 2,
    )
    flame = FlameRig(fit.shape, encoding.offsets[0].numpy(), source, net_config.flame.scale, net.poser)
    size = net_config.model.render_size
    return Avatar(rig, _head_lods(encoding), encoding.shoulders[0].detach(), crop_camera.resized(size, size), NAME,
                  provenance, 0, net_config.lod.scheme, refiner=net.refiner, flame=flame)  # fmt: skip


def _image(crop: np.ndarray, size: int) -> torch.Tensor:
    """[S, S, 3] uint8 crop -> [1, 3, size, size] RGB in [0, 1]."""
    image = torch.from_numpy(crop[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _moved_to(points: np.ndarray, seen_by: Camera, target: Camera) -> np.ndarray:
    """[N, 3] world points of ``seen_by`` -> ``target``'s world, keeping their camera-space
    position (both cameras share intrinsics: the points project onto the same pixels)."""
    in_camera = seen_by.world_to_camera(points)
    return (in_camera - target.t) @ target.R


def _head_lods(encoding: SourceEncoding) -> tuple[HeadLod, ...]:
    return tuple(
        HeadLod(level.quats[0], level.scales[0], level.opacities[0], level.features[0]) for level in encoding.levels
    )
