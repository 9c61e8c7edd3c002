"""The ``network`` reconstruction method: the released OMG-Avatar network on one portrait.

    portrait -> FLAME fitted to its landmarks (shape, expression, jaw, eyes; the head pose as
                the camera's extrinsic, the release's convention), in the release's framing
             -> the source as the release prepares it: the crop with its background black,
                resized to DINOv2's input; the camera as ``[R | T]``
             -> ReleaseNetwork.encode once, then reconstruct at every level (Sub#0..K)
             -> Avatar: each level's head Gaussians (rotations converted to what the release's
                rasteriser draws), the shoulders, a FLAME rig (shape, learned template offsets,
                the source's articulation, the release's FLAME) and the refiner

Its user files (:class:`NetworkFiles`) are checked before any heavy work, and one
:class:`ModelFileError` line names every missing one and where it goes: the checkpoint (the
release's ``omg_ckpt.pt`` or ours), FLAME (the release's ``FLAME_with_eye.pt``, with
``head_template_mesh.obj`` and ``FLAME_masks.pkl`` beside it) and, when the checkpoint lacks
DINOv2's weights, Meta's DINOv2 file. The checkpoint sizes the network; the config passed in
gives the tracking and fitting settings.

The source crop is the release's framing (:mod:`core.tracking.release_framing`: FLAME is fitted
in our crop, the photo re-cropped so that the head sits where the release's crops put it, and
fitted again); the background comes from our portrait segmentation rather than the release's
matting network.
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
from core.avatar.flame_rig import AttachedFlame, FlamePose, FlameRig, fitting_layer, release_fitting_config
from core.avatar.training_free.lifting import lift_landmarks
from core.avatar.training_free.method import Report
from core.config import Config
from core.errors import ModelFileError
from core.flame import FlameParams
from core.flame.files import FLAME_SITE, RELEASE_FLAME_FILE
from core.flame.release import RELEASE_EXPRESSION, RELEASE_SCALE, RELEASE_SHAPE
from core.geometry.camera import Camera
from core.geometry.release_camera import release_from_camera
from core.model.release_checkpoint import RELEASE_CHECKPOINT_FILE
from core.model.release_gaussians import ReleaseGaussians, drawn_rotations
from core.model.release_geometry import FlamePose as ReleasePose
from core.model.release_loading import BUNDLE_FILES, load_release_network
from core.model.release_network import Reconstruction, ReleaseNetwork, Source
from core.paths import CHECKPOINT_DIR, CHECKPOINT_FILE, resolve_model_file
from core.render import Gaussians
from core.tracking.flame_tracking import fit_photo
from core.tracking.photo import Portrait
from core.tracking.release_framing import release_framed

NAME = "network"
#: FLAME's root joint (a vertex's skinning weight on it is the share of the head's motion
#: it does not follow: the rig's rigidity is one minus it) and its neck joint (the pivot).
ROOT_JOINT, NECK_JOINT = 0, 1
RELEASE_REPOSITORY = "https://github.com/JianqiangRen/OMG-Avatar"


@dataclass(frozen=True)
class NetworkFiles:
    """The network method's user files; None: the default place.

    Attributes:
        checkpoint: network weights: the release's ``omg_ckpt.pt`` or our ``.safetensors``
            (default ``<models>/checkpoints/omg_ckpt.pt``, else ``omg_avatar.safetensors``).
        flame: FLAME, with the release's topology and masks beside it (default
            ``<models>/flame/FLAME_with_eye.pt``).
        dinov2: DINOv2 ViT-B/14 weights, needed when the checkpoint lacks them (default
            ``<models>/dinov2/dinov2_vitb14_pretrain.pth``).
    """

    checkpoint: Path | None = None
    flame: Path | None = None
    dinov2: Path | None = None


def check_files(files: NetworkFiles) -> NetworkFiles:
    """The files to use (DINOv2's only as given: whether it is needed depends on the checkpoint),
    all present; else ModelFileError, one line naming each missing file and where it goes."""
    checkpoint = Path(files.checkpoint).expanduser() if files.checkpoint else _default_checkpoint()
    flame = Path(files.flame or resolve_model_file(RELEASE_FLAME_FILE)).expanduser()
    wanted = [(checkpoint, "network checkpoint",
               f"the release's {RELEASE_CHECKPOINT_FILE} from {RELEASE_REPOSITORY}; give it with --checkpoint or "
               "put it there")]  # fmt: skip
    flame_where = f"from the release's resources ({RELEASE_REPOSITORY}; FLAME licence, {FLAME_SITE})"
    wanted.append((flame, "FLAME model", f"{flame_where}; give it with --flame or put it there"))
    if flame.is_file():  # its neighbours are looked for beside it
        wanted += [(flame.parent / name, f"FLAME {what} (beside the FLAME model)", flame_where)
                   for what, name in (("topology", BUNDLE_FILES["topology"]), ("masks", BUNDLE_FILES["masks"]))]  # fmt: skip
    if files.dinov2:  # given: it must be there (by default it is looked for only when needed)
        wanted.append((Path(files.dinov2).expanduser(), "DINOv2 weights", "give an existing file with --dinov2"))
    missing = [f"{what} {path} ({where})" for path, what, where in wanted if not path.is_file()]
    if missing:
        raise ModelFileError(f"the network method needs {len(missing)} missing file(s): " + "; ".join(missing))
    return NetworkFiles(checkpoint, flame, files.dinov2)


def _default_checkpoint() -> Path:
    """The release's checkpoint in the models folder, else ours; the release's when neither is."""
    release = resolve_model_file(f"{CHECKPOINT_DIR}/{RELEASE_CHECKPOINT_FILE}")
    ours = resolve_model_file(CHECKPOINT_FILE)
    return ours if ours.is_file() and not release.is_file() else release


def reconstruct_network(
    portrait: Portrait, config: Config, provenance: dict, report: Report, files: NetworkFiles | None = None
) -> Avatar:
    """An avatar of ``portrait`` by the network (see the module docstring); ``report(fraction,
    message)`` gives progress (and stops the work by raising when cancelled)."""
    found = check_files(files or NetworkFiles())
    report(0.0, "loading the network checkpoint")
    network = load_release_network(found.checkpoint, found.flame, found.dinov2)
    report(0.15, "loading FLAME for fitting")
    fitting = fitting_layer(found.flame, config)

    report(0.2, "fitting FLAME to the photo")
    crop_size = portrait.crop.image.shape[0]
    fitting_config = release_fitting_config(config)
    _, crop_camera = fit_photo(fitting, fitting_config, portrait.crop.landmarks, crop_size)
    portrait = release_framed(portrait, crop_camera)
    fit, crop_camera = fit_photo(fitting, fitting_config, portrait.crop.landmarks, crop_size)
    size = network.config.refiner_size
    camera = crop_camera.resized(size, size)
    source = Source(
        image=_source_image(portrait, network.config.image_size),
        transform=torch.as_tensor(release_from_camera(camera), dtype=torch.float32)[None],
        pose=_release_pose(fit),
    )

    report(0.3, "encoding the photo")
    levels: list[Reconstruction] = []
    with torch.no_grad():
        encoding = network.encode(source)
        for level in range(network.config.subdivision + 1):
            report(0.6 + 0.3 * level / (network.config.subdivision + 1), f"reconstructing Sub#{level}")
            levels.append(network.reconstruct(encoding, level))

    report(0.9, "assembling the avatar")
    flame_rig = FlameRig(fit.shape[:RELEASE_SHAPE], encoding.offsets[0].numpy(), FlamePose.from_fit(fit),
                         RELEASE_SCALE, AttachedFlame(network.flame_model, fitting))  # fmt: skip
    rig = _head_rig(network, flame_rig, portrait, config, camera)
    top = levels[-1]
    shoulders = top.gaussians.count - top.head_count
    provenance = {**provenance, "network": {"checkpoint": found.checkpoint.name,
                                            "sizes": dataclasses.asdict(network.config)}}  # fmt: skip
    return Avatar(rig, tuple(_head_lod(level) for level in levels), _shoulders(top.gaussians, shoulders), camera,
                  NAME, provenance, 0, "midpoint", refiner=network.upsampler, flame=flame_rig)  # fmt: skip


def _source_image(portrait: Portrait, size: int) -> torch.Tensor:
    """[1, 3, size, size] RGB in [0, 1]: the crop with its background black, resized (antialiased)."""
    rgb = portrait.crop.image[..., :3].astype(np.float32) / 255.0
    person = rgb * portrait.mask[..., None]
    image = torch.from_numpy(person).permute(2, 0, 1)[None]
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _release_pose(fit: FlameParams) -> ReleasePose:
    """The fit's FLAME coefficients as the release takes them (global rotation zero: the head
    pose is the camera's)."""
    expression, jaw_pose, eyes = FlamePose.from_fit(fit).release_coefficients(RELEASE_EXPRESSION)
    shape = np.zeros(RELEASE_SHAPE, dtype=np.float32)
    shape[: min(RELEASE_SHAPE, len(fit.shape))] = fit.shape[:RELEASE_SHAPE]
    return ReleasePose(torch.from_numpy(shape)[None], expression, jaw_pose, eyes)


def _head_rig(network: ReleaseNetwork, flame: FlameRig, portrait: Portrait, config: Config, camera: Camera) -> HeadRig:
    """The control mesh at the source's expression, FLAME's skinning as its rigidity, the neck
    joint as its pivot, and the photo's landmarks lifted into head space."""
    vertices = flame.posed(flame.source)
    model = network.flame_model
    with torch.no_grad():
        rest = model(torch.from_numpy(flame.shape[None]), torch.zeros(1, model.n_expression), torch.zeros(1, 6),
                     torch.zeros(1, 6), torch.from_numpy(flame.offsets[None]))[0]  # fmt: skip
    pivot = (model.J_regressor[NECK_JOINT] @ rest).numpy()
    crop_size = portrait.crop.image.shape[0]
    lifted = lift_landmarks(portrait.crop.landmarks, crop_size, config.camera, RELEASE_SCALE)
    return HeadRig(
        vertices=vertices,
        faces=network.geometry.subdivision.faces(0),
        binding=sp.csr_matrix((len(vertices), len(lifted.points))),  # expressions come from FLAME
        rigidity=1.0 - model.lbs_weights[:, ROOT_JOINT].numpy(),
        landmarks=_moved_to(lifted.points, lifted.camera, camera.resized(crop_size, crop_size)),
        pivot=pivot,
        centre=(vertices.min(axis=0) + vertices.max(axis=0)) / 2,
    )


def _moved_to(points: np.ndarray, seen_by: Camera, target: Camera) -> np.ndarray:
    """[N, 3] world points of ``seen_by`` -> ``target``'s world, keeping their camera-space
    position (both cameras share intrinsics: the points project onto the same pixels)."""
    in_camera = seen_by.world_to_camera(points)
    return (in_camera - target.t) @ target.R


def _head_lod(level: Reconstruction) -> HeadLod:
    """One level's head Gaussians, rotations as the release's rasteriser draws them."""
    head = level.head
    quats, scales = drawn_rotations(head.rotations[0], head.scales[0])
    return HeadLod(quats, scales, head.opacities[0, :, 0], head.colors[0])


def _shoulders(gaussians: ReleaseGaussians, count: int) -> Gaussians:
    """The first ``count`` Gaussians (the shoulders: the release puts them first) as renderable ones."""
    quats, scales = drawn_rotations(gaussians.rotations[0, :count], gaussians.scales[0, :count])
    return Gaussians(gaussians.xyz[0, :count], quats, scales, gaussians.opacities[0, :count, 0],
                     gaussians.colors[0, :count])  # fmt: skip
