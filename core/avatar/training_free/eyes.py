"""Eyeballs: a curved cap behind each eye opening, moved by its iris.

The face mesh has a hole at each eye opening. Behind it sits a paraboloid cap, wider
than the opening, whose apex is set so that the cap passes behind every eyelid vertex:
the lids always hide its rim, and the iris and sclera seen through the opening are
sampled onto it from the photo. Driving translates each cap with its iris centre, so
the pupil follows the driver's gaze under still eyelids.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from core.avatar.training_free.face_topology import (
    IRIS_CENTRES,
    LEFT_EYE_CORNERS,
    RIGHT_EYE_CORNERS,
    face_topology,
)
from core.avatar.training_free.rings import disk

#: Vertices of the cap's rings, centre outwards.
RING_COUNTS = (6, 12, 18)
#: Cap radius per eye width (corner to corner); > 0.5 so the lids hide the rim.
CAP_RADIUS_PER_EYE_WIDTH = 0.8
#: Paraboloid curvature times the eye width (an eyeball of radius 0.4 eye widths: 1 / 0.8).
CURVATURE_TIMES_EYE_WIDTH = 1.25
#: Gap behind the eyelids, per eye width.
RECESS_PER_EYE_WIDTH = 0.04


@dataclass(frozen=True)
class EyeCaps:
    """Both eyeball caps.

    Attributes:
        vertices: [2 C, 3] head-space positions (subject's right eye first).
        faces: [F, 3] int64 into ``vertices``, normals towards the viewer (+z).
        iris: [2 C] the iris-centre landmark each vertex moves with.
    """

    vertices: np.ndarray
    faces: np.ndarray
    iris: np.ndarray


@functools.lru_cache(maxsize=1)
def _cap_layout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return disk(list(RING_COUNTS))


def build_eyes(points: np.ndarray) -> EyeCaps:
    """Eyeball caps for [478, 3] head-space landmarks."""
    faces, radius, u = _cap_layout()
    topology = face_topology()
    unit = np.column_stack([radius * np.cos(2 * np.pi * u), radius * np.sin(2 * np.pi * u)])  # [C, 2]
    vertices, all_faces, iris = [], [], []
    for corners, lids, iris_centre in (
        (RIGHT_EYE_CORNERS, topology.right_eye, IRIS_CENTRES[0]),
        (LEFT_EYE_CORNERS, topology.left_eye, IRIS_CENTRES[1]),
    ):
        width = np.linalg.norm(points[corners[0]] - points[corners[1]])
        centre = points[list(corners)].mean(axis=0)
        curvature = CURVATURE_TIMES_EYE_WIDTH / width
        lid_offset = points[lids, :2] - centre[:2]
        apex = np.min(points[lids, 2] + curvature * (lid_offset**2).sum(axis=1)) - RECESS_PER_EYE_WIDTH * width
        xy = centre[:2] + CAP_RADIUS_PER_EYE_WIDTH * width * unit
        z = apex - curvature * ((xy - centre[:2]) ** 2).sum(axis=1)
        all_faces.append(faces + sum(len(v) for v in vertices))
        vertices.append(np.column_stack([xy, z]))
        iris.append(np.full(len(xy), iris_centre))
    return EyeCaps(np.concatenate(vertices), np.concatenate(all_faces), np.concatenate(iris))
