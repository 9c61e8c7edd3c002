"""The followed person's mask: background islands the segmenter calls "person" and the
padding where a crop reaches beyond its image are neither an avatar's colours nor an
evaluation's ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.config import load_config
from core.evaluation.sequences import VideoSequence
from core.tracking.crop import CropBox, crop_image, in_frame
from core.tracking.face_mesh import PortraitSegmenter
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
