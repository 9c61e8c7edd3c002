"""Portrait crop: framing from landmarks, exact landmark mapping, black padding."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import CropConfig
from core.errors import InputImageError
from core.tracking.crop import CropBox, crop_box_from_landmarks, crop_image, crop_portrait

CONFIG = CropConfig(output_size=256, face_scale=2.0, vertical_offset=0.25)


def blob_image(height: int, width: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    """[H, W, 3] uint8 Gaussian blob at a continuous pixel position."""
    ys, xs = np.mgrid[:height, :width] + 0.5
    blob = 255.0 * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2.0 * sigma**2))
    return np.repeat(blob.astype(np.uint8)[:, :, None], 3, axis=2)


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity centroid (x, y) in continuous pixels of channel 0."""
    weights = image[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]] + 0.5
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


def test_box_frames_the_landmark_box_with_the_configured_scale_and_offset():
    landmarks = np.array([[100.0, 150.0, 0.0], [200.0, 270.0, 5.0], [150.0, 200.0, -3.0]])
    box = crop_box_from_landmarks(landmarks, CONFIG)
    face_size = 120.0
    assert box.side == round(CONFIG.face_scale * face_size)
    assert box.x0 + box.side / 2 == pytest.approx(150.0, abs=0.5)
    assert box.y0 + box.side / 2 == pytest.approx(210.0 + CONFIG.vertical_offset * face_size, abs=0.5)
    assert box.size == CONFIG.output_size


def test_points_map_to_the_crop_and_back_with_z_scaled_like_x():
    box = CropBox(x0=-30, y0=40, side=400, size=512)
    points = np.array([[-30.0, 40.0, 0.0], [370.0, 440.0, 10.0], [100.0, 100.0, -4.0]])
    in_crop = box.to_crop(points)
    np.testing.assert_allclose(in_crop[:2, :2], [[0.0, 0.0], [512.0, 512.0]])
    np.testing.assert_allclose(in_crop[:, 2], points[:, 2] * 512 / 400)
    np.testing.assert_allclose(in_crop[:, :2], points[:, :2] @ box.matrix[:, :2].T + box.matrix[:, 2])
    np.testing.assert_allclose(box.to_source(in_crop), points, atol=1e-4)


@pytest.mark.parametrize(
    "box",
    [
        CropBox(500, 300, 300, 256),  # enlarge
        CropBox(100, 50, 700, 512),  # mild shrink: one warp
        CropBox(-200, -400, 1500, 256),  # strong shrink, partly outside: area pre-shrink
    ],
)
def test_image_content_lands_where_the_box_maps_it(box):
    centre = (612.3, 401.7)
    image = blob_image(1300, 1700, centre, sigma=30.0)
    crop = crop_image(image, box)
    assert crop.shape == (box.size, box.size, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(centroid(crop), box.to_crop(np.array(centre)), atol=0.05 * box.size / 256)


def test_outside_the_image_is_black_and_inside_is_kept():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_image(image, CropBox(x0=-100, y0=0, side=200, size=200))  # image: right top quarter
    assert crop[:, :95].max() == 0 and crop[105:].max() == 0
    assert crop[:95, 105:].min() == 200


def test_box_outside_the_image_is_refused_with_a_one_line_input_error():
    with pytest.raises(InputImageError, match="outside the 50x50 image") as refused:
        crop_image(np.zeros((50, 50, 3), np.uint8), CropBox(x0=60, y0=0, side=20, size=32))
    assert "\n" not in str(refused.value)
    assert CropBox(x0=-20, y0=49, side=21, size=32).overlaps(50, 50)
    assert not CropBox(x0=-20, y0=0, side=20, size=32).overlaps(50, 50)


def test_crop_portrait_returns_the_crop_box_and_landmarks_in_crop_pixels():
    landmarks = np.array([[300.0, 300.0, 1.0], [400.0, 420.0, 2.0]])
    image = blob_image(800, 700, (350.0, 360.0), sigma=20.0)
    portrait = crop_portrait(image, landmarks, CONFIG)
    np.testing.assert_allclose(portrait.landmarks, portrait.box.to_crop(landmarks))
    np.testing.assert_array_equal(portrait.image, crop_image(image, portrait.box))
    assert 0.4 * CONFIG.output_size < centroid(portrait.image)[0] < 0.6 * CONFIG.output_size
