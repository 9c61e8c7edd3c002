"""The neck: an elliptic tube from inside the head down past the bottom of the crop.

Its axis runs along the photo's image-down direction (so a tilted head keeps an upright
neck), behind the chin; its width is the portrait mask's narrowest width below the chin
(the neck, or hair falling beside it), converted to world units at the neck's depth. The
top rim lies inside the cranium and the bottom one below the crop, so neither is seen;
above the chin the tube is transparent (seen only through an open mouth).

Rigidity (how much of the head's motion a vertex follows) is 1 down to the chin and
falls smoothly to 0 over :data:`BLEND_FACE_HEIGHTS`, so the neck bends into the
shoulders; the shoulder sheet takes the same blend (:class:`HeightBlend`), so hair falling
beside the neck bends with it. Below the neck's visible length the tube fades out (its opacity falls to 0):
the shoulder sheet behind it holds the same pixels of the photo, and a turned head shows
neck, then clothes on the sheet, instead of a column's edge. For the same reason its
sides fade out (:data:`SIDE_FADE_FACING`): the photo sees them edge-on, so their colours
are the skin prior's or pulled dark by the sharpening, and they showed as a 1-2 px line
running from the jaw down over the collar, in the source view and more in turned ones;
the sheet holds the neck's outline there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from core.avatar.training_free.cranium import Ellipsoid
from core.avatar.training_free.face_topology import CHEEK_EXTREMES, CHIN, FOREHEAD_TOP, MOUTH_CORNERS
from core.avatar.training_free.rings import ring_parameter, smoothstep, zipper
from core.geometry.camera import Camera

#: Rings along the tube and vertices per ring.
RINGS = 11
VERTICES_PER_RING = 22
#: Axis distance behind the chin, in face heights (forehead top to chin).
AXIS_BEHIND_CHIN = 0.34
#: The tube starts this far below the cranium centre (inside the head), in face heights.
TOP_BELOW_CRANIUM_CENTRE = 0.2
#: The tube ends this far below the crop's bottom edge, in crop heights.
BOTTOM_MARGIN = 0.05
#: Half-depth of the neck per half-width.
DEPTH_PER_WIDTH = 1.0
#: Mask rows searched for the neck width: from the chin down to this many face heights.
WIDTH_SEARCH_FACE_HEIGHTS = (0.08, 0.35)
#: Neck half-width limits, in face widths (when the mask says less or more).
HALF_WIDTH_LIMITS = (0.3, 0.38)
#: Rigidity falls from 1 at the chin's height to 0 this many face heights lower, or at
#: the latest at this fraction of the tube's length (the crop's bottom is static).
BLEND_FACE_HEIGHTS = 0.6
STATIC_FROM = 0.85
#: The tube is opaque down to this many face heights below the chin, then fades out over
#: FADE_FACE_HEIGHTS.
VISIBLE_BELOW_CHIN = 0.1
FADE_FACE_HEIGHTS = 0.2
#: The tube's sides fade out where its normal's share along the source view's axis falls
#: from the second value to the first: opaque where the photo sees the tube within 41
#: degrees of face-on, transparent beyond 66. (Fading more of it, opaque within 37 degrees,
#: opens holes under the jaw in the orbit's +-60 degree side views; fading less, 45 and 70,
#: leaves a dark rim along the tube's outline in turned views once the shoulder sheet
#: renders the mask's soft edges as soft: busy clip at yaw -20, 5.5 levels.)
SIDE_FADE_FACING = (0.4, 0.75)


@dataclass(frozen=True)
class HeightBlend:
    """How much of the head's motion a point follows, by its height along the neck: 1 down
    to ``start``, falling smoothly to 0 over ``length`` (head-space units along ``down``,
    measured from ``top``). The neck's rings and whatever hangs beside them (hair on the
    shoulder sheet) share it, so they bend together and nothing tears between them."""

    top: np.ndarray
    down: np.ndarray
    start: float
    length: float

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """[N] rigidity in [0, 1] of head-space ``points`` [N, 3]."""
        return 1.0 - smoothstep(((points - self.top) @ self.down - self.start) / self.length)


@dataclass(frozen=True)
class Neck:
    """The neck tube.

    Attributes:
        vertices: [N, 3] head-space positions, ring by ring from the top.
        faces: [F, 3] int64 indices into ``vertices``, normals outwards.
        rigidity: [N] in [0, 1], ``blend`` at each vertex.
        opacity: [N] in [0, 1], the fade-out at the bottom and at the sides.
        pivot: [3] the point of the axis level with the mouth corners: the head turns about it.
        blend: the rigidity by height.
    """

    vertices: np.ndarray
    faces: np.ndarray
    rigidity: np.ndarray
    opacity: np.ndarray
    pivot: np.ndarray
    blend: HeightBlend


@functools.lru_cache(maxsize=1)
def neck_faces() -> np.ndarray:
    """[F, 3] the tube's fixed topology (rings of :data:`VERTICES_PER_RING`, top first)."""
    u = ring_parameter(VERTICES_PER_RING, offset=0.0)
    faces = []
    for ring in range(RINGS - 1):
        upper = ring * VERTICES_PER_RING + np.arange(VERTICES_PER_RING)
        faces.extend(zipper(upper, u, upper + VERTICES_PER_RING, u))
    return np.array(faces, dtype=np.int64)


def build_neck(points: np.ndarray, cranium: Ellipsoid, camera: Camera, mask: np.ndarray) -> Neck:
    """The neck of a face.

    Args:
        points: [478, 3] head-space landmarks.
        cranium: the fitted cranium.
        camera: the source view (head space is its world).
        mask: [S, S] portrait mask of the crop.
    """
    face_height = points[FOREHEAD_TOP, 1] - points[CHIN, 1]
    face_width = np.linalg.norm(points[CHEEK_EXTREMES[1]] - points[CHEEK_EXTREMES[0]])
    down = camera.R[1]  # image-down in head space (row 1 of world-to-camera)
    top = np.array([0.0, cranium.centre[1] - TOP_BELOW_CRANIUM_CENTRE * face_height,
                    points[CHIN, 2] - AXIS_BEHIND_CHIN * face_height])  # fmt: skip
    length = _length_to_below_crop(top, down, camera)
    half_width = np.clip(
        _mask_neck_half_width(points, camera, mask, face_height, top),
        *(limit * face_width for limit in HALF_WIDTH_LIMITS),
    )
    across = np.array([1.0, 0.0, 0.0]) - down[0] * down
    across /= np.linalg.norm(across)
    forward = np.cross(across, down)  # +z-ish: across x down points out of the face
    angle = 2 * np.pi * ring_parameter(VERTICES_PER_RING, offset=0.0)
    # Counter-clockwise seen from below (along -down), so that the zipper's normals face out.
    section = np.cos(angle)[:, None] * across * half_width + np.sin(angle)[:, None] * forward * (
        DEPTH_PER_WIDTH * half_width
    )  # [K, 3]
    # The ellipse's normal (cos / width, sin / depth): its share along ``forward``, the view's axis.
    facing = np.abs(np.sin(angle)) / np.hypot(np.cos(angle) * DEPTH_PER_WIDTH, np.sin(angle))
    low, high = SIDE_FADE_FACING
    side_opacity = smoothstep((facing - low) / (high - low))
    along = np.linspace(0.0, length, RINGS)
    centres = top + along[:, None] * down  # [R, 3]
    vertices = (centres[:, None, :] + section[None]).reshape(-1, 3)
    chin_along = (points[CHIN] - top) @ down
    blend_length = max(min(BLEND_FACE_HEIGHTS * face_height, STATIC_FROM * length - chin_along), 0.1 * face_height)
    blend = HeightBlend(top, down, float(chin_along), float(blend_length))
    ring_opacity = 1.0 - smoothstep(
        (along - chin_along - VISIBLE_BELOW_CHIN * face_height) / (FADE_FACE_HEIGHTS * face_height)
    )
    mouth_along = (points[list(MOUTH_CORNERS)].mean(axis=0) - top) @ down
    pivot = top + mouth_along * down
    # Inside the head the tube is only seen through an open mouth, where its front would
    # show skin in front of the mouth's interior: it fades in from the mouth to the chin.
    ring_opacity *= smoothstep((along - mouth_along) / max(chin_along - mouth_along, 1e-6))
    opacity = (ring_opacity[:, None] * side_opacity[None]).ravel()  # ring by ring
    return Neck(vertices, neck_faces(), blend(vertices), opacity, pivot, blend)


def _length_to_below_crop(top: np.ndarray, down: np.ndarray, camera: Camera) -> float:
    """Distance along ``down`` from ``top`` to where the axis projects below the crop."""
    steps = np.linspace(0.0, 10.0, 1001)
    rows = camera.project(top + steps[:, None] * down)[0][:, 1]
    below = np.flatnonzero(rows >= camera.height * (1.0 + BOTTOM_MARGIN))
    return float(steps[below[0]] if len(below) else steps[-1])


def _mask_neck_half_width(
    points: np.ndarray, camera: Camera, mask: np.ndarray, face_height: float, top: np.ndarray
) -> float:
    """Half the narrowest run of portrait-mask pixels below the chin, in world units at
    the neck's depth (0 when the mask has no person there)."""
    (chin_x, chin_y), chin_depth = camera.project(points[CHIN])
    (_, top_y), _ = camera.project(points[FOREHEAD_TOP])
    face_px = chin_y - top_y
    rows = np.arange(*(int(chin_y + f * face_px) for f in WIDTH_SEARCH_FACE_HEIGHTS))
    rows = rows[(rows >= 0) & (rows < mask.shape[0])]
    column = int(np.clip(chin_x, 0, mask.shape[1] - 1))
    widths = []
    for row in rows:
        outside = np.flatnonzero(mask[row] < 0.5)
        if column in outside:
            continue
        left = outside[outside < column].max(initial=-1) + 1
        right = outside[outside > column].min(initial=mask.shape[1])
        widths.append(right - left)
    if not widths:
        return 0.0
    neck_depth = camera.world_to_camera(top)[2]
    return 0.5 * float(np.min(widths)) * neck_depth / camera.K[0, 0]
