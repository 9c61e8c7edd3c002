"""The inner mouth: a dark bowl with teeth bands, behind the lips.

The face mesh has a hole between the inner lip contours. Behind it sits a bowl whose rim
follows the lips' depth at the centre and curves back past the corners (and as far up
and down), so the lips and cheeks hide it while the mouth is closed. Its colours are a prior: dark interior,
an upper and a lower teeth band just above and below its middle, where parting lips
uncover it first (replaced by the photo where an open mouth shows them). Driving moves the bowl's lower half with the chin (the jaw), so an opening
mouth reveals the interior and the lower teeth instead of stretched lips.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from core.avatar.training_free.face_topology import INNER_LIP_MIDPOINTS, MOUTH_CORNERS
from core.avatar.training_free.rings import disk, smoothstep

#: Vertices of the bowl's rings, centre outwards.
RING_COUNTS = (6, 12, 18, 24)
#: Bowl half-width and half-height per mouth width (corner to corner).
HALF_WIDTH_PER_MOUTH_WIDTH = 0.62
HALF_HEIGHT_PER_MOUTH_WIDTH = 0.45
#: Bowl depth per mouth width.
DEPTH_PER_MOUTH_WIDTH = 0.5
#: Gap behind the lips (and the mouth corners), per mouth width.
RECESS_PER_MOUTH_WIDTH = 0.06
#: Colours (RGB in [0, 1]) of the interior and the teeth.
INTERIOR_COLOUR = (0.16, 0.06, 0.06)
TEETH_COLOUR = (0.76, 0.72, 0.66)
#: Teeth bands, just above and below the bowl's middle (right behind parting lips): height
#: ranges (-1 bottom, 1 top) and the half-width they cover, as fractions of the bowl's.
UPPER_TEETH_HEIGHTS = (0.15, 0.5)
LOWER_TEETH_HEIGHTS = (-0.5, -0.2)
TEETH_HALF_WIDTH = 0.6
#: The lower half follows the jaw: jaw weight rises from 0 to 1 between these heights.
JAW_WEIGHT_HEIGHTS = (0.25, -0.35)


@dataclass(frozen=True)
class MouthBowl:
    """The inner mouth.

    Attributes:
        vertices: [M, 3] head-space positions.
        faces: [F, 3] int64 into ``vertices``, normals towards the viewer (+z).
        colour: [M, 3] prior colours.
        jaw_weight: [M] how much of the jaw's displacement each vertex follows.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colour: np.ndarray
    jaw_weight: np.ndarray


@functools.lru_cache(maxsize=1)
def _bowl_layout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return disk(list(RING_COUNTS))


def build_mouth(points: np.ndarray) -> MouthBowl:
    """The inner mouth for [478, 3] head-space landmarks."""
    faces, radius, u = _bowl_layout()
    corners = points[list(MOUTH_CORNERS)]
    lips = points[list(INNER_LIP_MIDPOINTS)].mean(axis=0)
    width = np.linalg.norm(corners[1] - corners[0])
    recess = RECESS_PER_MOUTH_WIDTH * width
    half_width, half_height = HALF_WIDTH_PER_MOUTH_WIDTH * width, HALF_HEIGHT_PER_MOUTH_WIDTH * width
    unit_x, unit_y = radius * np.cos(2 * np.pi * u), radius * np.sin(2 * np.pi * u)
    x = corners[:, 0].mean() + half_width * unit_x
    y = lips[1] + half_height * unit_y
    # Rim depth: behind the lips at the centre, curving back like the face (a paraboloid that
    # passes behind the mouth corners at their distance, sideways or up and down).
    front, back = lips[2] - recess, corners[:, 2].mean() - recess
    offset_squared = ((x - corners[:, 0].mean()) ** 2 + (y - lips[1]) ** 2) / (0.5 * width) ** 2
    rim = front - (front - back) * offset_squared
    z = rim - DEPTH_PER_MOUTH_WIDTH * width * (1.0 - radius**2)

    across = np.abs(unit_x) <= TEETH_HALF_WIDTH
    upper = across & (unit_y >= UPPER_TEETH_HEIGHTS[0]) & (unit_y <= UPPER_TEETH_HEIGHTS[1])
    lower = across & (unit_y >= LOWER_TEETH_HEIGHTS[0]) & (unit_y <= LOWER_TEETH_HEIGHTS[1])
    colour = np.where((upper | lower)[:, None], TEETH_COLOUR, INTERIOR_COLOUR)
    top, bottom = JAW_WEIGHT_HEIGHTS
    jaw_weight = smoothstep((top - unit_y) / (top - bottom))
    return MouthBowl(np.column_stack([x, y, z]), faces, colour, jaw_weight)
