"""Which face the tracker follows when a frame shows several.

At the start (and after :meth:`FaceFollower.reset`) the largest face is followed. In every
later frame the followed face is the one whose centre (the centre of its landmarks' 2D box)
is nearest where the followed face was last seen, if it is within :data:`FOLLOW_RADIUS`
followed-face sizes of it; other faces are ignored, however large. When no face is that
near, the followed face is lost and the frame counts as one without a face. A face that
comes back within reach is followed on; only once the followed face has been lost for
:data:`SWITCH_AFTER_S` seconds of source time does the largest face present become the
followed one (a switch to another person).

Sizes and boxes are in the pixels of the frame the faces were found in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.tracking.crop import landmark_box

#: How far from where the followed face was last seen a face's centre may be, in sizes of
#: the followed face, to be taken for it. A head moves far less between two frames; faces
#: side by side are about one face size apart or more.
FOLLOW_RADIUS = 0.5
#: Seconds of source time the followed face must be lost before another face is followed.
SWITCH_AFTER_S = 1.0


@dataclass(frozen=True)
class Following:
    """The follower's pick among one frame's faces.

    Attributes:
        landmarks: [N, 3] the followed face's landmarks; None when no face is followed in
            this frame (no face at all, or the followed one is lost).
        others: [F, 4] boxes (x0, y0, x1, y1) of the faces found and not followed (F may be 0).
        switched: ``landmarks`` belong to another person than the face followed before
            (never for the first face followed after the start or a reset).
    """

    landmarks: np.ndarray | None
    others: np.ndarray
    switched: bool = False


class FaceFollower:
    """Picks the followed face in consecutive frames (see the module docstring)."""

    def __init__(self, radius: float = FOLLOW_RADIUS, switch_after_s: float = SWITCH_AFTER_S):
        self.radius = radius
        self.switch_after_s = switch_after_s
        self.reset()

    def reset(self) -> None:
        """Forget the followed face: the next frame's largest face is followed."""
        self._centre: np.ndarray | None = None  # [2] where the followed face was last seen
        self._size = 0.0  # its size there (larger side of its landmark box)
        self._lost_since: float | None = None  # timestamp of the first frame it was missing from

    @property
    def last_seen(self) -> np.ndarray | None:
        """[4] box (x0, y0, x1, y1) of the followed face where it was last seen (a square of
        its size), None before the first face or after a reset."""
        if self._centre is None:
            return None
        return np.concatenate([self._centre - self._size / 2.0, self._centre + self._size / 2.0])

    def follow(self, faces: list[np.ndarray], timestamp_s: float) -> Following:
        """The followed face among ``faces`` ([N, 3] landmarks each) of the frame at ``timestamp_s``
        (frames in order; a timestamp earlier than the previous one, as when a video loops,
        restarts the lost time)."""
        boxes = np.array([landmark_box(face) for face in faces], dtype=np.float64).reshape(-1, 4)
        chosen, switched = self._choose(boxes, timestamp_s)
        if chosen is None:
            return Following(None, boxes)
        low, high = boxes[chosen, :2], boxes[chosen, 2:]
        self._centre, self._size, self._lost_since = (low + high) / 2.0, float((high - low).max()), None
        return Following(faces[chosen], np.delete(boxes, chosen, axis=0), switched)

    def _choose(self, boxes: np.ndarray, timestamp_s: float) -> tuple[int | None, bool]:
        """Index of the followed face in ``boxes`` [F, 4] (None: none followed) and whether it
        is a switch to another person."""
        if len(boxes) and self._centre is None:
            return _largest(boxes), False
        if self._centre is None:
            return None, False
        if len(boxes):
            distances = np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2.0 - self._centre, axis=1)
            nearest = int(distances.argmin())
            if distances[nearest] <= self.radius * self._size:
                return nearest, False
        if self._lost_since is None or timestamp_s < self._lost_since:
            self._lost_since = timestamp_s
        if len(boxes) and timestamp_s - self._lost_since >= self.switch_after_s:
            return _largest(boxes), True
        return None, False


def _largest(boxes: np.ndarray) -> int:
    """Index of the box of largest area in ``boxes`` [F, 4], F > 0."""
    extent = boxes[:, 2:] - boxes[:, :2]
    return int((extent[:, 0] * extent[:, 1]).argmax())
