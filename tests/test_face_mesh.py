"""MediaPipe wrappers on the sample portraits: landmarks, largest face, detector, mask."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from core.config import load_config
from core.tracking.face_mesh import FaceDetector, FaceMesh, PortraitSegmenter
from core.tracking.photo import read_image

pytestmark = pytest.mark.samples

TRACKING = load_config("paper").tracking


@pytest.fixture(scope="module")
def portrait(samples_dir) -> np.ndarray:
    """einstein.jpg as [500, 375, 3] uint8 RGB."""
    return read_image(samples_dir / "photos" / "einstein.jpg")


@pytest.fixture(scope="module")
def static_mesh():
    with FaceMesh(TRACKING, static=True) as mesh:
        yield mesh


def box_centre(landmarks: np.ndarray) -> np.ndarray:
    return (landmarks[:, :2].min(axis=0) + landmarks[:, :2].max(axis=0)) / 2.0


def test_landmarks_are_478_pixels_inside_the_face(static_mesh, portrait):
    landmarks = static_mesh.detect(portrait)
    assert landmarks.shape == (478, 3) and landmarks.dtype == np.float32
    height, width = portrait.shape[:2]
    assert (landmarks[:, 0] > 0).all() and (landmarks[:, 0] < width).all()
    assert (landmarks[:, 1] > 0).all() and (landmarks[:, 1] < height).all()
    # Landmark 263 is the subject's left outer eye corner: the viewer's right.
    assert landmarks[263, 0] > landmarks[33, 0]
    # z is in pixels like x: the nose tip is tens of pixels nearer than the eye corners.
    assert landmarks[[33, 263], 2].mean() - landmarks[1, 2] > 10


def test_without_iris_refinement_there_are_468_landmarks(portrait):
    config = dataclasses.replace(TRACKING, refine_landmarks=False)
    with FaceMesh(config, static=True) as mesh:
        assert mesh.detect(portrait).shape == (468, 3)


def test_no_face_gives_none_not_an_error(static_mesh):
    assert static_mesh.detect(np.full((240, 320, 3), 127, np.uint8)) is None
    assert static_mesh.detect_all(np.zeros((240, 320, 3), np.uint8)) == []


def test_of_several_faces_the_largest_comes_first(static_mesh, portrait):
    height, width = portrait.shape[:2]
    small = cv2.resize(portrait, (width * 2 // 3, height * 2 // 3), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, 2 * width, 3), 255, np.uint8)
    canvas[:, :width] = portrait
    canvas[: small.shape[0], width : width + small.shape[1]] = small
    faces = static_mesh.detect_all(canvas)
    assert len(faces) == 2
    assert box_centre(faces[0])[0] < width < box_centre(faces[1])[0]
    np.testing.assert_array_equal(static_mesh.detect(canvas), faces[0])


def test_video_mode_tracks_consecutive_frames(portrait):
    with FaceMesh(TRACKING, static=False) as mesh:
        first, second = mesh.detect(portrait), mesh.detect(portrait)
    assert first is not None and second is not None
    assert np.abs(first[:, :2] - second[:, :2]).max() < 3.0


def test_full_range_detector_finds_the_human_and_not_the_dog(samples_dir, static_mesh, portrait):
    with FaceDetector(TRACKING.min_detection_confidence) as detector:
        boxes = detector.boxes(portrait)
        dog_boxes = detector.boxes(read_image(samples_dir / "photos" / "dog_no_human_face.jpg"))
    assert dog_boxes.shape == (0, 4)
    assert boxes.shape == (1, 4)
    centre = box_centre(static_mesh.detect(portrait))
    assert (boxes[0, :2] < centre).all() and (centre < boxes[0, 2:]).all()


def test_portrait_mask_marks_the_person_and_not_the_background(samples_dir):
    rgb = read_image(samples_dir / "photos" / "woman_pearls.jpg")  # plain white background
    with PortraitSegmenter() as segmenter:
        mask = segmenter.mask(rgb)
    assert mask.shape == rgb.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    height, width = mask.shape
    assert mask[height // 2, width // 2] > 0.9  # the face
    assert mask[: height // 10, : width // 10].mean() < 0.1  # top-left background
