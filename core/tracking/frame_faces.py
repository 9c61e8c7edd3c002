"""The faces of one video frame, small ones included.

MediaPipe's face mesh in video mode finds faces with its own short-range detector, which
misses faces below about a fifth of the frame: a full-body shot, a person far from the
webcam. Two more looks find those:

- a followed face smaller than :data:`SMALL_FACE_SHARE` of the frame's short side is
  looked for in a close-up around where it was last seen (:func:`mesh_around`): MediaPipe
  then sees it large, and its landmarks are as precise as a large face's;
- a frame where the mesh finds no face at all goes to the full-range face detector (faces
  up to about 5 m), and the mesh looks in a close-up around each of its detections.

Landmarks are in frame pixels, as :meth:`FaceMesh.detect_all` gives them.
"""

from __future__ import annotations

import numpy as np

from core.config import TrackingConfig
from core.tracking.crop import landmark_box
from core.tracking.face_mesh import FaceDetector, FaceMesh, first_face_around, mesh_around

#: A followed face smaller than this share of the frame's short side is looked for in a
#: close-up.
SMALL_FACE_SHARE = 0.25
#: Pixels of a close-up (the mesh's own detector works at 128 px, its landmark model at 192 px).
CLOSE_UP_SIZE = 256
#: Two faces whose centres are closer than this share of the larger one's size are one face.
SAME_FACE_DISTANCE = 0.5


class FrameFaces:
    """Finds the faces of consecutive frames of one stream; close it to free MediaPipe."""

    def __init__(self, config: TrackingConfig):
        self._config = config
        self._mesh = FaceMesh(config, static=False)
        self._close_up_mesh: FaceMesh | None = None  # created when first needed
        self._detector: FaceDetector | None = None

    def find(self, rgb: np.ndarray, followed: np.ndarray | None) -> list[np.ndarray]:
        """Every face in ``rgb`` [H, W, 3] uint8 as [N, 3] landmarks, the followed face's
        close-up first when it ran.

        Args:
            followed: [4] box (x0, y0, x1, y1) where the followed face was last seen, None
                when no face is followed.
        """
        faces = self._mesh.detect_all(rgb)
        if followed is not None and _side(followed) < SMALL_FACE_SHARE * min(rgb.shape[:2]):
            close = mesh_around(self._close_up(), rgb, followed, CLOSE_UP_SIZE)
            if close is not None:
                return [close, *(face for face in faces if not _same_face(face, close))]
        if faces:
            return faces
        if self._detector is None:
            self._detector = FaceDetector(self._config.min_detection_confidence)
        found = first_face_around(self._close_up(), rgb, self._detector.boxes(rgb), CLOSE_UP_SIZE)
        return [] if found is None else [found]

    def close(self) -> None:
        for graph in (self._mesh, self._close_up_mesh, self._detector):
            if graph is not None:
                graph.close()

    def _close_up(self) -> FaceMesh:
        """The mesh for close-ups: static, since every close-up is a new image region."""
        if self._close_up_mesh is None:
            self._close_up_mesh = FaceMesh(self._config, static=True)
        return self._close_up_mesh


def _side(box: np.ndarray) -> float:
    """Larger side of ``box`` [4]."""
    return float(max(box[2] - box[0], box[3] - box[1]))


def _same_face(face: np.ndarray, other: np.ndarray) -> bool:
    """Whether landmarks ``face`` and ``other`` [N, 3] are one face found twice."""
    box, other_box = landmark_box(face), landmark_box(other)
    distance = np.linalg.norm((box[:2] + box[2:] - other_box[:2] - other_box[2:]) / 2.0)
    return bool(distance < SAME_FACE_DISTANCE * max(_side(box), _side(other_box)))
