"""Issue 15: hair as a volume, not a shell. The training-free head's outline follows the
portrait mask (in the source view, and by its geometry, not only by its opacities), keeps
its width when seen from the side, does not bulge above flat hair, and the unseen back of
the head carries hair texture rather than one flat colour. Also the hair mask itself."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from core.avatar import reconstruct
from core.avatar.training_free.face_topology import face_topology
from core.avatar.training_free.hair_mask import hair_mask
from core.config import load_config
from core.render import Gaussians, render
from core.tracking.photo import prepare_portrait

CONFIG = load_config("paper")
PHOTOS = ["einstein", "mona_lisa", "woman_pearls", "man_bw_2048", "child_photo_of_photo", "woman_veil_painting"]
#: Alpha and mask values counted as "covered".
COVERED = 0.5
#: Source-view IoU of the avatar's alpha with the person mask, every photo and LOD.
MIN_SOURCE_IOU = 0.97
#: IoU of the head's geometry (opaque Gaussians) with the mask above the forehead top:
#: the shell itself follows the hair, not just its opacities.
MIN_SHELL_IOU = 0.93
#: Head width at yaw +-45 degrees relative to yaw 0 (big hair keeps its volume).
MIN_SIDE_WIDTH_RATIO = 0.8
#: Largest gap between the head's top and the mask's top at yaw 0, share of the crop.
MAX_TOP_GAP = 0.03
#: Luminance spread of the back of the head relative to the visible hair's (front
#: Gaussians on the hair mask, tested on its own below), at LOD 2.
MIN_BACK_TEXTURE_RATIO = 0.5
LUMINANCE = np.array([0.299, 0.587, 0.114])


@functools.cache
def _avatar(samples_dir, name: str):
    """(portrait, avatar) of a sample photo, made once per test run."""
    portrait = prepare_portrait(samples_dir / "photos" / f"{name}.jpg", CONFIG.tracking)
    return portrait, reconstruct(portrait, config=CONFIG)


def _opaque_head(avatar, lod: int) -> Gaussians:
    """The head's Gaussians at ``lod`` with every opacity 1: its geometry's silhouette."""
    head = avatar.lods[lod]
    opaque = torch.ones_like(head.opacities)
    return Gaussians(avatar.head_means(lod), head.quats, head.scales, opaque, head.features[:, :3])


def _covered(gaussians: Gaussians, camera) -> np.ndarray:
    return render(gaussians, camera, backend="cpu").alpha.numpy() > COVERED


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _synthetic_portrait(size: int = 256):
    """(image [S, S, 3] uint8, mask [S, S], landmarks [478, 2], drawn hair [S, S] bool): a
    skin-coloured face ellipse under a dark, textured hair region, on a uniform background."""
    rows, columns = np.mgrid[:size, :size].astype(np.float64)
    centre, face_axes = np.array([128.0, 140.0]), np.array([50.0, 66.0])
    face = ((columns - centre[0]) / face_axes[0]) ** 2 + ((rows - centre[1]) / face_axes[1]) ** 2 <= 1.0
    head = ((columns - centre[0]) / 80.0) ** 2 + ((rows - 110.0) / 95.0) ** 2 <= 1.0
    hair = head & ~face
    rng = np.random.default_rng(0)
    image = np.empty((size, size, 3), np.float64)
    image[:] = (150, 170, 200)
    image[face] = (225, 180, 150)
    image[hair] = np.array([70, 45, 30]) + rng.normal(0.0, 18.0, (hair.sum(), 1))
    image += rng.normal(0.0, 3.0, image.shape)
    landmarks = np.tile(centre, (478, 1))
    oval = face_topology().oval
    angle = np.linspace(-np.pi / 2, 3 * np.pi / 2, len(oval), endpoint=False)  # from the forehead top, as the oval runs
    landmarks[oval] = centre + face_axes * np.column_stack([np.cos(angle), -np.sin(angle)])
    mask = (face | head).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), mask, landmarks, hair


def test_hair_mask_finds_the_drawn_hair():
    image, mask, landmarks, hair = _synthetic_portrait()
    found = hair_mask(image, mask, landmarks)
    lowest = np.flatnonzero(found.any(axis=1)).max()
    assert _iou(found, hair & (np.arange(len(hair))[:, None] <= lowest)) >= 0.85
    assert not found[mask < 0.5].any()


@pytest.mark.samples
@pytest.mark.parametrize("name", PHOTOS)
def test_source_view_silhouette_matches_the_person_mask(samples_dir, name):
    portrait, avatar = _avatar(samples_dir, name)
    person = portrait.mask > COVERED
    ious = [_iou(_covered(avatar.gaussians(lod), avatar.camera()), person) for lod in range(avatar.num_lods)]
    print(f"\n{name}: source-view IoU per LOD " + ", ".join(f"{iou:.4f}" for iou in ious))
    assert min(ious) >= MIN_SOURCE_IOU


@pytest.mark.samples
@pytest.mark.parametrize("name", PHOTOS)
def test_shell_geometry_follows_the_mask_above_the_forehead(samples_dir, name):
    portrait, avatar = _avatar(samples_dir, name)
    above = slice(0, int(portrait.crop.landmarks[10, 1]))  # the forehead top's row
    shape = _covered(_opaque_head(avatar, 1), avatar.camera())[above]
    iou = _iou(shape, (portrait.mask > COVERED)[above])
    print(f"\n{name}: opaque head vs mask above the forehead, IoU {iou:.4f}")
    assert iou >= MIN_SHELL_IOU


@pytest.mark.samples
def test_side_view_keeps_the_hair_volume(samples_dir):
    portrait, avatar = _avatar(samples_dir, "einstein")
    head = _opaque_head(avatar, 1)
    widths, tops = {}, {}
    for yaw in (-45, 0, 45):
        covered = _covered(head, avatar.camera(yaw_deg=yaw))
        columns = np.flatnonzero(covered.any(axis=0))
        widths[yaw], tops[yaw] = columns[-1] - columns[0] + 1, np.flatnonzero(covered.any(axis=1))[0]
    mask_top = np.flatnonzero((portrait.mask > COVERED).any(axis=1))[0]
    gap = abs(int(tops[0]) - int(mask_top)) / portrait.mask.shape[0]
    print(f"\nwidths at yaw -45/0/45: {widths[-45]}/{widths[0]}/{widths[45]}, top gap {gap:.3f}")
    assert min(widths[-45], widths[45]) >= MIN_SIDE_WIDTH_RATIO * widths[0]
    assert gap <= MAX_TOP_GAP


@pytest.mark.samples
@pytest.mark.parametrize("name", ["einstein", "mona_lisa", "woman_pearls"])
def test_hidden_hair_is_textured(samples_dir, name):
    portrait, avatar = _avatar(samples_dir, name)
    means = avatar.head_means(2).numpy()
    luminance = avatar.lods[2].features[:, :3].numpy() @ LUMINANCE
    offset = means - avatar.rig.centre  # head space: +y up, +z towards the source camera
    back = (offset[:, 2] < -0.5 * np.abs(offset[:, 2]).max()) & (offset[:, 1] > 0)
    uv = avatar.camera().project(means.astype(np.float64))[0]
    size = portrait.mask.shape[0]
    row, column = (np.clip(uv[:, axis].astype(int), 0, size - 1) for axis in (1, 0))
    hair = hair_mask(portrait.crop.image, portrait.mask, portrait.crop.landmarks)
    seen_hair = (offset[:, 2] > 0) & hair[row, column]
    ratio = luminance[back].std() / luminance[seen_hair].std()
    print(f"\n{name}: back-of-head luminance std / visible hair's {ratio:.3f}")
    assert ratio >= MIN_BACK_TEXTURE_RATIO
