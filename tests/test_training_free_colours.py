"""Issue 15: the training-free avatar's colours come from the person, never from the
background, and no Gaussian shows outside the portrait's silhouette in the source view.
Also the photo the samplers read: push-pull extrapolation of the person's pixels."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from core.avatar import reconstruct
from core.avatar.training_free.colour import person_photo, push_pull
from core.config import load_config
from core.render import render
from core.tracking.photo import portrait_from_image, prepare_portrait
from core.tracking.sources import open_source

CONFIG = load_config("paper")
MAGENTA = np.array([1.0, 0.0, 1.0])
#: The issue's acceptance numbers: colour distance counted as "magenta", the share of
#: Gaussians allowed that close, the alpha counted as "visible" and the share of pixels
#: outside the (dilated) mask allowed that visible.
MAGENTA_DISTANCE = 0.25
MAX_MAGENTA_SHARE = 0.002
VISIBLE_ALPHA = 0.3
MAX_VISIBLE_OUTSIDE = 0.005
#: The mask is dilated by this many pixels per 512 crop pixels before counting "outside".
DILATION_PX_AT_512 = 3


def test_push_pull_keeps_known_pixels_and_fills_the_rest_from_them():
    values = np.zeros((37, 53, 3), np.float32)
    values[:, :20] = (0.2, 0.4, 0.6)
    values[:, 20:] = MAGENTA  # unknown: must not leak into the result
    weight = np.zeros((37, 53), np.float32)
    weight[:, :20] = 1.0
    filled = push_pull(values, weight)
    assert np.allclose(filled[:, :20], values[:, :20])
    assert np.allclose(filled, (0.2, 0.4, 0.6), atol=1e-5)


def test_person_photo_shows_only_the_person():
    size = 512
    rows, columns = np.mgrid[:size, :size]
    mask = np.clip((120.0 - np.hypot(rows - 256, columns - 256)) / 2.0 + 0.5, 0.0, 1.0).astype(np.float32)  # soft disk
    person_colour = np.stack([columns / size, np.full_like(mask, 0.5), rows / size], axis=-1).astype(np.float32)
    photo = (mask[..., None] * person_colour + (1.0 - mask[..., None]) * MAGENTA).astype(np.float32)
    seen = person_photo(photo, mask)
    assert not seen.person[mask < 1].any()  # the mixed edge is out
    assert np.allclose(seen.image[seen.person], photo[seen.person])
    assert np.linalg.norm(seen.image - MAGENTA, axis=-1).min() > 0.5
    assert seen.inside[256, 256] > 100 and seen.inside[0, 0] < -100


def _portrait(samples_dir, name: str):
    return prepare_portrait(samples_dir / "photos" / f"{name}.jpg", CONFIG.tracking)


def _on_magenta(portrait):
    """``portrait`` with its background (mask < 0.5, the mask of the original photo) painted
    magenta: the mask stays the same, so only colour bleed can put magenta on the avatar."""
    image = portrait.crop.image.copy()
    image[portrait.mask < 0.5] = np.round(MAGENTA * 255).astype(np.uint8)
    return dataclasses.replace(portrait, crop=dataclasses.replace(portrait.crop, image=image))


def _all_colours(avatar) -> np.ndarray:
    """[N, 3] the RGB of every head Gaussian of every LOD and of the shoulders."""
    heads = [head.features[:, :3].numpy() for head in avatar.lods]
    return np.concatenate([*heads, avatar.shoulders.features[:, :3].numpy()])


@pytest.mark.samples
@pytest.mark.parametrize("name", ["einstein", "woman_pearls"])
def test_no_background_colour_on_gaussians(samples_dir, name):
    avatar = reconstruct(_on_magenta(_portrait(samples_dir, name)), config=CONFIG)
    colours = _all_colours(avatar)
    share = float((np.linalg.norm(colours - MAGENTA, axis=1) < MAGENTA_DISTANCE).mean())
    print(f"\n{name}: {share:.4%} of {len(colours)} Gaussians are magenta")
    assert share < MAX_MAGENTA_SHARE


@pytest.mark.samples
@pytest.mark.parametrize("name", ["einstein", "woman_pearls", "mona_lisa"])
def test_no_gaussian_outside_the_mask(samples_dir, name):
    portrait = _portrait(samples_dir, name)
    avatar = reconstruct(portrait, config=CONFIG)
    size = portrait.mask.shape[0]
    radius = max(1, round(DILATION_PX_AT_512 * size / 512))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    outside = cv2.dilate((portrait.mask >= 0.5).astype(np.uint8), kernel) == 0
    shares = []
    for lod in range(avatar.num_lods):
        alpha = render(avatar.gaussians(lod), avatar.camera(), backend="cpu").alpha.numpy()
        shares.append(float((alpha[outside] > VISIBLE_ALPHA).mean()))
    print(f"\n{name}: visible share outside the mask per LOD " + ", ".join(f"{share:.4%}" for share in shares))
    assert max(shares) < MAX_VISIBLE_OUTSIDE


@pytest.mark.samples
def test_the_person_is_covered_where_the_head_is_seen_edge_on(samples_dir):
    """Long hair beside the temples, where the head's shell is seen edge-on from the source
    view: its thin Gaussians left a strip of the person uncovered (0.45 % of the crop, the
    background showing between cheek and hair); the shoulder sheet now fills whatever of the
    mask the head leaves. Covered: alpha at least half the mask's value (the sheet renders the
    mask's soft edges as soft); without the fill 0.31-0.44 % of the crop is not, now 0.01-0.04 %."""
    with open_source(str(samples_dir / "videos" / "talking_busy_background.mp4")) as source:
        first = next(iter(source))
    portrait = portrait_from_image(first.rgb, "talking_busy_background frame 0", CONFIG.tracking)
    avatar = reconstruct(portrait, config=CONFIG)
    for lod in range(avatar.num_lods):
        alpha = render(avatar.gaussians(lod), avatar.camera(), backend="cpu").alpha.numpy()
        assert ((portrait.mask > 0.5) & (alpha < portrait.mask / 2)).mean() < 0.001
