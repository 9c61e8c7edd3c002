"""Photo input: every image kind becomes upright RGB uint8; bad photos give clear errors."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from PIL import Image

from core.config import load_config
from core.errors import InputImageError, NoFaceError
from core.tracking.face_mesh import FaceDetector, FaceMesh
from core.tracking.photo import portrait_from_image, prepare_portrait, read_image

TRACKING = load_config("paper").tracking
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6  # EXIF: the stored image must be turned 90 degrees clockwise to display


def save(image: Image.Image, path, **options):
    image.save(path, **options)
    return path


# ----------------------------------------------------------------- read_image: formats


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (255, 0, 0)  # left half red, right half black
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    rgb = read_image(save(image, tmp_path / "rotated.jpg", exif=exif, quality=95))
    assert rgb.shape == (80, 40, 3)  # portrait after turning clockwise
    assert rgb[10, 20, 0] > 200 and rgb[70, 20, 0] < 50  # the red half is now on top


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    rgb = read_image(save(Image.fromarray(gray, "L"), tmp_path / "gray.png"))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (10, 20, 30, 255)  # opaque colour
    rgba[:, 2:] = (0, 0, 0, 0)  # fully transparent black
    rgb = read_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "cutout.png"))
    np.testing.assert_array_equal(rgb[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(rgb[0, 3], (255, 255, 255))


def test_palette_image_with_a_transparent_index(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 200, 50, 25] + [0] * 762)
    palette.paste(1, (0, 0, 2, 4))
    rgb = read_image(save(palette, tmp_path / "palette.png", transparency=0))
    np.testing.assert_array_equal(rgb[0, 0], (200, 50, 25))
    np.testing.assert_array_equal(rgb[0, 3], (255, 255, 255))


def test_sixteen_bit_images_are_rescaled_not_clipped(tmp_path):
    gray16 = np.array([[0, 257 * 128, 65535]], np.uint16)
    rgb = read_image(save(Image.fromarray(gray16), tmp_path / "gray16.png"))
    np.testing.assert_array_equal(rgb[0, :, 0], (0, 128, 255))

    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[..., 2] = 65535  # red in OpenCV's BGR order
    bgr16[..., 1] = 257 * 64
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), bgr16)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png")[0, 0], (255, 64, 0))


# ----------------------------------------------------------------- read_image: bad files


def test_truncated_jpeg_is_refused(tmp_path):
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(full)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputImageError, match="truncated.jpg is corrupt or truncated"):
        read_image(truncated)


def test_text_file_named_jpg_is_refused(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image\n")
    with pytest.raises(InputImageError, match="notes.jpg is not an image"):
        read_image(fake)


def test_empty_and_missing_files_are_refused(tmp_path):
    (tmp_path / "empty.png").touch()
    with pytest.raises(InputImageError, match="empty.png is an empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(InputImageError, match="image not found"):
        read_image(tmp_path / "missing.png")


def test_one_pixel_image_is_too_small(tmp_path):
    path = save(Image.new("RGB", (1, 1)), tmp_path / "dot.png")
    with pytest.raises(InputImageError, match="dot.png is 1x1 pixels, too small"):
        prepare_portrait(path, TRACKING)


# ----------------------------------------------------------------- prepare_portrait on samples


@pytest.mark.samples
def test_dog_photo_has_no_face(samples_dir):
    with pytest.raises(NoFaceError, match="no face found in dog_no_human_face.jpg"):
        prepare_portrait(samples_dir / "photos" / "dog_no_human_face.jpg", TRACKING)


@pytest.mark.samples
def test_face_below_the_minimum_size_is_refused(samples_dir):
    config = dataclasses.replace(TRACKING, photo=dataclasses.replace(TRACKING.photo, min_face_size=200))
    with pytest.raises(InputImageError, match=r"the face in einstein.jpg is \d+ pixels, smaller"):
        prepare_portrait(samples_dir / "photos" / "einstein.jpg", config)


@pytest.mark.samples
def test_large_grayscale_portrait_is_framed_and_masked(samples_dir):
    portrait = prepare_portrait(samples_dir / "photos" / "man_bw_2048.jpg", TRACKING)
    size = TRACKING.crop.output_size
    assert portrait.image.shape == (2048, 2048, 3)
    assert portrait.landmarks.shape == (478, 3)
    assert portrait.crop.image.shape == (size, size, 3) and portrait.crop.image.dtype == np.uint8
    assert portrait.mask.shape == (size, size)
    face_x = portrait.crop.landmarks[:, 0]
    assert abs((face_x.min() + face_x.max()) / 2 - size / 2) < 0.05 * size  # centred
    assert portrait.mask[int(portrait.crop.landmarks[1, 1]), int(portrait.crop.landmarks[1, 0])] > 0.9
    assert portrait.mask[:10, :10].mean() < 0.1


@pytest.mark.samples
def test_huge_photo_gives_the_same_face_and_crop_as_the_original(samples_dir, tmp_path):
    original = samples_dir / "photos" / "einstein.jpg"
    upscale = 12  # 375x500 -> 4500x6000, far above max_detect_side
    rgb = read_image(original)
    huge = cv2.resize(rgb, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    Image.fromarray(huge).save(tmp_path / "huge.jpg", quality=90)

    small, large = prepare_portrait(original, TRACKING), prepare_portrait(tmp_path / "huge.jpg", TRACKING)
    assert large.image.shape == huge.shape
    face_size = np.ptp(small.landmarks[:, 1])
    error = np.abs(large.landmarks[:, :2] / upscale - small.landmarks[:, :2])
    assert np.median(error) < 0.02 * face_size
    difference = np.abs(large.crop.image.astype(float) - small.crop.image.astype(float))
    assert difference.mean() < 8.0


def test_a_small_face_in_a_full_body_frame_is_found_around_the_detectors_box(samples_dir):
    """The mesh's own short-range detector misses a 90-pixel face in a 720x1080 full-body shot;
    the full-range detector's box, enlarged and cropped, gives the mesh a face it can read."""
    capture = cv2.VideoCapture(str(samples_dir / "videos" / "full_body_small_face.mp4"))
    frame = cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB)
    capture.release()
    with FaceMesh(TRACKING, static=True) as mesh, FaceDetector(TRACKING.min_detection_confidence) as detector:
        assert mesh.detect_all(frame) == []  # what the face search relied on before
        (box,) = detector.boxes(frame)
    portrait = portrait_from_image(frame, "full_body", TRACKING)
    low, high = portrait.landmarks[:, :2].min(axis=0), portrait.landmarks[:, :2].max(axis=0)
    assert np.all(low >= box[:2] - 0.25 * (box[2:] - box[:2])) and np.all(high <= box[2:] + 0.25 * (box[2:] - box[:2]))
    assert portrait.crop.box.side < frame.shape[0] / 3  # framed around the small face
