"""The followed person's mask: background the segmenter calls "person" (islands, or regions
joined to the person on a busy background) and the padding where a crop reaches beyond its
image are neither an avatar's colours nor an evaluation's ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.config import load_config
from core.evaluation.sequences import VideoSequence
from core.tracking.crop import CropBox, crop_image, in_frame
from core.tracking.face_mesh import GENERAL_SEGMENTATION_MODEL, PortraitSegmenter, _SelfieSegmentation
from core.tracking.mask_fusion import fuse_masks
from core.tracking.person_mask import followed_person
from core.tracking.tracker import TrackedFrame

CONFIG = load_config("paper")


def _person_and_island() -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged head-and-shoulders mask, a separate blob on the right, face landmarks."""
    mask = np.zeros((256, 256), np.float32)
    cv2.ellipse(mask, (100, 90), (45, 60), 0, 0, 360, 1.0, -1)
    cv2.rectangle(mask, (30, 170), (170, 255), 1.0, -1)
    cv2.rectangle(mask, (80, 140), (120, 175), 1.0, -1)  # the neck joins head and shoulders
    cv2.circle(mask, (220, 60), 20, 1.0, -1)  # a bright patch of wall
    mask = cv2.GaussianBlur(mask, (7, 7), 0)
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    landmarks = np.stack([100 + 30 * np.cos(angles), 95 + 40 * np.sin(angles)], axis=1)
    return mask, landmarks


def test_an_island_apart_from_the_face_is_cleared_and_the_person_kept_with_its_soft_edge():
    mask, landmarks = _person_and_island()
    kept = followed_person(mask, landmarks)
    assert kept[60, 220] == 0.0 and mask[60, 220] > 0.9  # the island
    assert kept[40:90, 195:245].max() == 0.0  # its soft fringe too
    person = np.zeros_like(mask, dtype=bool)
    person[:, :180] = True
    person &= mask > 0.05  # the blur's faint tail beyond the fringe may go
    np.testing.assert_array_equal(kept[person], mask[person])  # head, neck, shoulders and their fringe
    assert ((mask[person] > 0.05) & (mask[person] < 0.95)).any()  # the fringe is soft: the check is not vacuous


def test_a_mask_without_the_face_on_it_is_left_alone():
    mask, landmarks = _person_and_island()
    assert followed_person(mask, landmarks + 500.0) is mask  # landmarks outside the mask's image
    single = mask.copy()
    single[:, 180:] = 0.0
    assert followed_person(single, landmarks) is single  # one region: nothing to clear


def test_fused_masks_take_the_general_models_edges_where_the_landscape_model_sees_the_person():
    landscape, _ = _person_and_island()  # 256 px: the fusion's bands are 12 px here
    landscape[:, 180:] = 0.0
    general = cv2.erode(landscape, np.ones((3, 3), np.uint8))  # finer edges a pixel inside
    cv2.rectangle(general, (150, 0), (255, 100), 1.0, -1)  # a door joined to the head, beside it
    general[220:240, 60:90] = 0.3  # a washed-out patch in dark clothes
    landscape_spill = landscape.copy()
    landscape_spill[150:170, 20:35] = 1.0  # the coarse model's outline spilling onto the background
    fused = fuse_masks(general, landscape_spill)
    assert fused[10:60, 200:255].max() == 0.0  # the door, away from the person: cleared
    assert fused[228, 75] == landscape[228, 75] == 1.0  # the patch, deep inside the person: filled
    edge = (landscape > 0.05) & (landscape < 0.95)
    np.testing.assert_array_equal(fused[edge], general[edge])  # the general model's soft edges
    spill = np.s_[150:170, 20:30]
    assert general[spill].max() < 0.05 and landscape_spill[spill].min() == 1.0
    np.testing.assert_array_equal(fused[spill], general[spill])  # the spill is not added


@pytest.mark.samples
def test_a_busy_background_joined_to_the_person_is_not_the_person(samples_dir):
    """talking_busy_background at frame 195: the general model takes the door above her head
    and the shelves beside it for her (85 % of the crop against 56 % at frame 0)."""
    video = samples_dir / "videos" / "talking_busy_background.mp4"
    with PortraitSegmenter() as segmenter, VideoSequence(video, CONFIG, segmenter) as sequence:
        box, first = sequence.portrait().crop.box, sequence.portrait().mask
        frame = next(frame for frame in sequence.frames() if frame.index == 195)
        crop = crop_image(frame.rgb, box)
        fused = segmenter.mask(crop)
    with _SelfieSegmentation(GENERAL_SEGMENTATION_MODEL) as general_model:
        general = general_model.mask(crop)
    upper_right = np.s_[:200, 350:]  # door and shelves; she sits left of centre
    assert general[upper_right].mean() > 0.3  # the failure is there: the check is not vacuous
    assert fused[upper_right].mean() < 0.01
    assert abs(fused.mean() - first.mean()) < 0.08  # the person's size, as at the first frame


def test_in_frame_is_the_share_of_each_crop_pixel_inside_the_image():
    box = CropBox(-50, 100, 400, 512)  # reaches beyond the left and bottom of a 640x360 image
    share = in_frame(box, 640, 360)
    warped = crop_image(np.ones((360, 640), np.float32), box)
    assert share.shape == (512, 512) and share.min() == 0.0 and share.max() == 1.0
    assert np.abs(share - warped).mean() < 1e-3  # what crop_image's padding leaves of a white image
    inside = CropBox(10, 10, 100, 64)
    assert in_frame(inside, 640, 360).min() == 1.0


@pytest.mark.samples
def test_eval_scores_no_pixel_outside_the_video_frame(samples_dir):
    """talking_d3's crop reaches below its 512x512 frame: the black padding there used to be
    the target (the segmenter took it for the black shirt), now render and target are white."""
    video = samples_dir / "videos" / "talking_d3.mp4"
    with PortraitSegmenter() as segmenter, VideoSequence(video, CONFIG, segmenter) as sequence:
        portrait = sequence.portrait()
        tracked = TrackedFrame(0, 0.0, portrait.crop.image, portrait.crop.box, portrait.crop.landmarks, None, None)
        outside = in_frame(portrait.crop.box, 512, 512) == 0.0
        assert outside.mean() > 0.05  # a band of padding: the check is not vacuous
        assert portrait.mask[outside].max() == 0.0  # the avatar takes no colour from the padding
        rendered, target = sequence.scored(tracked, np.zeros_like(portrait.crop.image))
    assert (rendered[outside] == 255).all() and (target[outside] == 255).all()
    inside = in_frame(portrait.crop.box, 512, 512) == 1.0
    assert (rendered[inside] == 0).all()  # the render is untouched inside the frame
