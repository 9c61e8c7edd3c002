"""MediaPipe wrappers: face mesh (478 landmarks), full-range face detection, portrait mask.

All three use the models bundled in the mediapipe 0.10.21 wheel (``mediapipe.solutions``);
nothing is downloaded. Each wrapper owns its MediaPipe graphs (the portrait mask two: see
:mod:`core.tracking.mask_fusion`): use it as a context manager (or call ``close``) so the
graphs' threads and buffers are released.

Images are RGB uint8 ``[H, W, 3]``. Landmarks are in pixels of the image they were found
in: ``x`` right, ``y`` down, ``z`` depth relative to the face (larger is farther from the
camera) in the same pixel scale as ``x`` (MediaPipe's normalised ``z`` times the width).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mediapipe.python.solutions import face_detection as mp_face_detection
from mediapipe.python.solutions import face_mesh as mp_face_mesh
from mediapipe.python.solutions import selfie_segmentation as mp_selfie_segmentation

from core.config import TrackingConfig
from core.tracking.crop import CropBox, crop_image, landmark_box
from core.tracking.mask_fusion import fuse_masks

#: MediaPipe's full-range face detector (faces up to about 5 m); the short-range one
#: inside the face mesh also fires on some animal faces.
FULL_RANGE_DETECTOR = 1
#: MediaPipe's selfie-segmentation models: general (square-ish portraits) and landscape.
GENERAL_SEGMENTATION_MODEL, LANDSCAPE_SEGMENTATION_MODEL = 0, 1


class _Graph:
    """Plumbing shared by the wrappers: ``process``, and release on close. (MediaPipe's
    native log lines are kept off the terminal by :mod:`core.tracking.native_log`.)"""

    def __init__(self, make_solution: Callable[[], object]):
        self._solution = make_solution()

    def _process(self, rgb: np.ndarray):
        """MediaPipe's results for ``rgb`` [H, W, 3] uint8."""
        return self._solution.process(np.ascontiguousarray(rgb))

    def close(self) -> None:
        self._solution.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class FaceMesh(_Graph):
    """MediaPipe face mesh with iris refinement.

    ``static=True`` detects independently in every image (photos); ``static=False`` is
    MediaPipe's video mode, which tracks the face from the previous frame and runs the
    detector only when it lost it (streams: call it on consecutive frames).
    """

    def __init__(self, config: TrackingConfig, static: bool):
        super().__init__(
            lambda: mp_face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=config.max_faces,
                refine_landmarks=config.refine_landmarks,
                min_detection_confidence=config.min_detection_confidence,
                min_tracking_confidence=config.min_tracking_confidence,
            )
        )

    def detect_all(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Landmarks of every face found, largest (landmark box area) first.

        Args:
            rgb: [H, W, 3] uint8 image.
        Returns:
            list of [N, 3] float32 pixel landmarks, N = 478 with iris refinement, else 468.
        """
        height, width = rgb.shape[:2]
        results = self._process(rgb)
        faces = [
            np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            * np.array([width, height, width], dtype=np.float32)
            for face in results.multi_face_landmarks or []
        ]
        return sorted(faces, key=_box_area, reverse=True)

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """[N, 3] pixel landmarks of the largest face in ``rgb`` [H, W, 3]; None without a face."""
        faces = self.detect_all(rgb)
        return faces[0] if faces else None


class FaceDetector(_Graph):
    """MediaPipe's full-range face detector; confirms that a face mesh sits on a human face."""

    def __init__(self, min_confidence: float):
        super().__init__(
            lambda: mp_face_detection.FaceDetection(
                min_detection_confidence=min_confidence, model_selection=FULL_RANGE_DETECTOR
            )
        )

    def boxes(self, rgb: np.ndarray) -> np.ndarray:
        """[F, 4] face boxes (x0, y0, x1, y1) in pixels of ``rgb`` [H, W, 3]; F may be 0."""
        height, width = rgb.shape[:2]
        results = self._process(rgb)
        boxes = [
            (box.xmin, box.ymin, box.xmin + box.width, box.ymin + box.height)
            for box in (d.location_data.relative_bounding_box for d in results.detections or [])
        ]
        return np.array(boxes, dtype=np.float32).reshape(-1, 4) * np.array(
            [width, height, width, height], dtype=np.float32
        )


class _SelfieSegmentation(_Graph):
    """One of MediaPipe's selfie-segmentation models."""

    def __init__(self, model: int):
        super().__init__(lambda: mp_selfie_segmentation.SelfieSegmentation(model_selection=model))

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        return np.clip(self._process(rgb).segmentation_mask, 0.0, 1.0).astype(np.float32, copy=False)


class PortraitSegmenter:
    """How much each pixel belongs to the person: MediaPipe's general and landscape selfie
    segmentation, fused (:func:`~core.tracking.mask_fusion.fuse_masks`)."""

    def __init__(self):
        self._general = _SelfieSegmentation(GENERAL_SEGMENTATION_MODEL)
        try:
            self._landscape = _SelfieSegmentation(LANDSCAPE_SEGMENTATION_MODEL)
        except BaseException:
            self._general.close()
            raise

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """[H, W] float32 portrait mask in [0, 1] for ``rgb`` [H, W, 3] uint8 (1 = person)."""
        return fuse_masks(self._general.mask(rgb), self._landscape.mask(rgb))

    def close(self) -> None:
        self._general.close()
        self._landscape.close()

    def __enter__(self) -> PortraitSegmenter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


#: Side of a close-up around a face too small for the mesh's own detector, in sides of the
#: box where the face is (room for the face's extent and a frame's head motion).
CLOSE_UP_CONTEXT = 3.0


def mesh_around(mesh: FaceMesh, rgb: np.ndarray, box: np.ndarray, crop_size: int) -> np.ndarray | None:
    """Landmarks of a face too small for the mesh's own detector, found in a close-up.

    The face mesh's short-range detector misses faces below about a fifth of the image
    (full-body shots, people far from a webcam); cut a square of :data:`CLOSE_UP_CONTEXT`
    sides of ``box`` around its centre, enlarge it to ``crop_size`` pixels and look there.

    Args:
        mesh: the face mesh to run on the close-up (static mode: close-ups move).
        rgb: [H, W, 3] uint8 image.
        box: [4] (x0, y0, x1, y1) where the face is, in ``rgb``'s pixels.
    Returns:
        [N, 3] landmarks in ``rgb``'s pixels of the largest face in the close-up, or None.
    """
    side = CLOSE_UP_CONTEXT * float(max(box[2] - box[0], box[3] - box[1]))
    centre = (box[:2] + box[2:]) / 2.0
    close_up = CropBox(round(centre[0] - side / 2), round(centre[1] - side / 2), max(1, round(side)), crop_size)
    if not close_up.overlaps(rgb.shape[1], rgb.shape[0]):
        return None
    found = mesh.detect(crop_image(rgb, close_up))
    return None if found is None else close_up.to_source(found)


def first_face_around(mesh: FaceMesh, rgb: np.ndarray, boxes: np.ndarray, crop_size: int) -> np.ndarray | None:
    """:func:`mesh_around` each of ``boxes`` [F, 4], largest first, until a face is found:
    its [N, 3] landmarks in ``rgb``'s pixels, or None."""
    for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        landmarks = mesh_around(mesh, rgb, box, crop_size)
        if landmarks is not None:
            return landmarks
    return None


def _box_area(landmarks: np.ndarray) -> float:
    x0, y0, x1, y1 = landmark_box(landmarks)
    return float((x1 - x0) * (y1 - y0))
