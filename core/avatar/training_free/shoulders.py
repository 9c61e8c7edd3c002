"""Shoulders: the paper's multi-region scheme with the photo in place of a conv net.

Shoulder mask = portrait mask in the lower part of the crop (fading in below the eyes,
so hair falling beside the face belongs to it) minus the head's depth-buffer mask, and
at any height whatever the head's Gaussians leave uncovered (where the head is seen
edge-on: hair beside the temples). The sheet itself also continues behind the head, so a turning head or an opening jaw
uncovers shoulders instead of a hole: behind the neck (below the chin) with the photo's
neck and collar, behind the head's outline with colours filled in from the shoulder
cells around (a copy of the jaw there would show as a ghost). With the neck's fading
rigidity and opacity, this is the neck blend.

One Gaussian per grid cell of that mask, each on its cell's ray (image-aligned, so the
source view sees the photo's cells), at the depth of the neck's axis: behind the head's
front, in front of its back (above the eyes, where the cells only fill the hair's outline,
at the cranium centre's depth, the outline's). Away from the neck the sheet bends back by
:data:`BEND_PER_FACE_WIDTH` (shoulders recede), so seen from the side it is a shallow
curve rather than a card edge-on. A cell's colour is the mean of the person's pixels
(the eroded mask) it sees, cells seeing too few of them are filled by push-pull from the
cells around (never from the background, whose pixels a soft mask would mix in); its
opacity is such that the overlapping Gaussians of cells that all cover as much of the mask
render that much alpha (:func:`opacity_for_coverage`; a cell's own coverage as its opacity
rendered coverages of 0.5 as 0.75 and of 0.8 as 0.92: soft edges came out as solid
outlines), faded where the cell's Gaussian would reach well past the mask's edge. The
cell size gives about the configured number of Gaussians on the visible shoulder mask
(cells behind the head come on top). The cells move with the body and, by their height,
with the head as the neck does (``Avatar.shoulder_rigidity``, from :class:`.neck.HeightBlend`).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from core.avatar.training_free.colour import PersonPhoto, push_pull, silhouette_fade
from core.avatar.training_free.face_topology import (
    CHEEK_EXTREMES,
    CHIN,
    FOREHEAD_TOP,
    LEFT_EYE_CORNERS,
    RIGHT_EYE_CORNERS,
)
from core.avatar.training_free.rings import smoothstep
from core.avatar.training_free.sampling import sample_bilinear
from core.avatar.training_free.surface import flat_gaussian_shapes
from core.geometry.camera import Camera
from core.render import Gaussians
from core.render.constants import ALPHA_MAX

#: Cells covering less of the mask than this are dropped.
MIN_COVERAGE = 0.05
#: Standard deviation of a cell's Gaussian, in cell sides.
SIGMA_PER_CELL = 0.6
#: Normal standard deviation relative to the in-plane one.
FLATNESS = 0.2
#: Cell side limits in pixels.
CELL_LIMITS = (1.0, 8.0)
#: How far the sheet bends back at one face width to the side of the neck, in face widths
#: (a parabola in the horizontal distance).
BEND_PER_FACE_WIDTH = 0.35
#: The mask counts as shoulders from the eyes' row, fading in over this many face heights.
FADE_IN_FACE_HEIGHTS = 0.15
#: Behind the head the sheet reaches this many face heights in from the head's outline
#: (what a moving head uncovers); deeper cells would never be seen.
BEHIND_HEAD_FACE_HEIGHTS = 0.15


def shoulder_gaussians(
    photo: PersonPhoto,
    mask: np.ndarray,
    head_depth: np.ndarray,
    head_alpha: np.ndarray,
    landmark_pixels: np.ndarray,
    plane_point: np.ndarray,
    head_centre: np.ndarray,
    camera: Camera,
    target_count: int,
) -> Gaussians:
    """The shoulder Gaussians in head space.

    Args:
        photo: the crop as the samplers read it.
        mask: [S, S] portrait mask.
        head_depth: [S, S] the head mesh's depth buffer in the source view (+inf off the head).
        head_alpha: [S, S] the head's Gaussians' alpha in the source view (where the mesh
            is seen edge-on, the hair beside the temples, they leave the mask uncovered).
        landmark_pixels: [478, 2+] landmarks in crop pixels.
        plane_point: [3] a head-space point of the neck's axis (the sheet's depth there).
        head_centre: [3] the cranium's centre in head space (the depth of the head's outline).
        camera: the source view.
        target_count: about how many Gaussians to make.

    Returns:
        N Gaussians with RGB features, float32.
    """
    sheet, seen = _sheet_regions(mask, head_depth, head_alpha, landmark_pixels)
    cell, coverage, colour = _cells(photo.image, sheet, seen, photo.person, target_count)
    keep_row, keep_column = np.nonzero(coverage >= MIN_COVERAGE)
    pixels = np.column_stack([keep_column, keep_row]) * cell + cell / 2.0
    fade = silhouette_fade(sample_bilinear(photo.inside, pixels), np.full(len(pixels), SIGMA_PER_CELL * cell), len(mask))

    axis = camera.world_to_camera(plane_point)
    focal = camera.K[0, 0]
    rays = np.column_stack([(pixels - camera.K[:2, 2]) / focal, np.ones(len(pixels))])
    face_width = np.linalg.norm(np.subtract(*landmark_pixels[list(CHEEK_EXTREMES), :2])) * axis[2] / focal
    sideways = rays[:, 0] * axis[2] - axis[0]
    depth = axis[2] + BEND_PER_FACE_WIDTH * sideways**2 / face_width
    # Above the eyes the sheet only fills the rim the head's Gaussians leave of the hair's
    # outline: there it lies at the depth of the head's outline, the cranium's centre, so
    # that turned views see it at the head's side (at the neck's depth it stuck out of the
    # hair; at the depth of the nearest head pixel, the face's, in front of the cheek).
    # The sheet's own depth fades in as its region does below the eyes, so no step shows.
    sheet_share = _below_eyes(pixels[:, 1], landmark_pixels)
    depth = sheet_share * depth + (1.0 - sheet_share) * camera.world_to_camera(head_centre)[2]
    means = (rays * depth[:, None] - camera.t) @ camera.R
    towards_camera = np.broadcast_to(-camera.R[2], means.shape)
    quats, scales = flat_gaussian_shapes(towards_camera, SIGMA_PER_CELL * cell * depth / focal, FLATNESS)
    opacity = opacity_for_coverage(coverage[keep_row, keep_column]) * fade
    attributes = (means, quats, scales, opacity, colour[keep_row, keep_column])
    return Gaussians(*(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)) for values in attributes))


def opacity_for_coverage(coverage: np.ndarray) -> np.ndarray:
    """[N] opacities in [0, 1] for cells covering ``coverage`` [N] of their area: the opacity
    at which a grid of such cells' Gaussians renders, averaged over a cell, that alpha (1
    beyond the most a grid renders)."""
    rendered, opacities = _grid_alpha()
    return np.interp(coverage, rendered, opacities)


@functools.cache
def _grid_alpha() -> tuple[np.ndarray, np.ndarray]:
    """(rendered alpha, opacity): increasing tables of the alpha, averaged over a cell, that
    an endless grid of Gaussians (:data:`SIGMA_PER_CELL`) with one opacity renders (each
    Gaussian's alpha capped at the renderers' :data:`ALPHA_MAX`, composited front to back)."""
    offsets = np.arange(-4, 5)  # neighbours beyond 4 cells add less than exp(-3.5**2 / 0.72)
    inside = (np.arange(8) + 0.5) / 8.0  # points over one cell
    x, y = np.meshgrid(inside, inside)
    squared = (x.reshape(-1, 1, 1) - offsets[:, None]) ** 2 + (y.reshape(-1, 1, 1) - offsets) ** 2
    footprint = np.exp(-squared.reshape(len(squared), -1) / (2.0 * SIGMA_PER_CELL**2))  # [points, cells]
    opacities = np.linspace(0.0, 1.0, 101)
    transmitted = np.prod(1.0 - np.minimum(opacities[:, None, None] * footprint, ALPHA_MAX), axis=2)
    return 1.0 - transmitted.mean(axis=1), opacities


def _below_eyes(rows: np.ndarray, landmark_pixels: np.ndarray) -> np.ndarray:
    """``rows`` (any shape, crop pixels) -> how far below the eyes each is, in [0, 1]: 0 up
    to the eyes' row, 1 from :data:`FADE_IN_FACE_HEIGHTS` face heights lower."""
    eye_row = landmark_pixels[list(RIGHT_EYE_CORNERS + LEFT_EYE_CORNERS), 1].mean()
    face_height = landmark_pixels[CHIN, 1] - landmark_pixels[FOREHEAD_TOP, 1]
    return smoothstep((rows - eye_row) / (FADE_IN_FACE_HEIGHTS * face_height))


def _sheet_regions(
    mask: np.ndarray, head_depth: np.ndarray, head_alpha: np.ndarray, landmark_pixels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """[S, S] soft masks: where the sheet is, and where it shows the photo (see the module
    docstring; the rest of the sheet is behind the head)."""
    rows = np.arange(mask.shape[0])[:, None]
    chin_row = landmark_pixels[CHIN, 1]
    face_height = chin_row - landmark_pixels[FOREHEAD_TOP, 1]
    off_head = ~np.isfinite(head_depth)
    to_outline = cv2.distanceTransform((~off_head).astype(np.uint8), cv2.DIST_L2, 3)  # in pixels
    below_chin = rows > chin_row
    lower = mask * _below_eyes(rows, landmark_pixels)
    # Whatever of the person the head leaves uncovered, at any height: above the chin those
    # cells follow the head (the neck's blend), so they are hair, not a static card (above
    # the eyes they lie on the head's outline, see shoulder_gaussians).
    seen = mask * np.maximum(lower * off_head, np.maximum(1.0 - head_alpha, below_chin))
    return np.maximum(seen, lower * (to_outline < BEHIND_HEAD_FACE_HEIGHTS * face_height)), seen


def _cells(
    photo: np.ndarray, sheet: np.ndarray, seen: np.ndarray, person: np.ndarray, target_count: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """The sheet on a square grid of about ``target_count`` cells over ``seen``.

    Args:
        photo: [S, S, 3] float32.
        sheet: [S, S] in [0, 1], where the sheet is.
        seen: [S, S] in [0, 1], where the sheet shows the photo.
        person: [S, S] bool, the person's pixels (the only ones whose colour counts).

    Returns:
        cell: the cell side in pixels.
        coverage: [G, G] the sheet's share of each cell.
        colour: [G, G, 3] the photo's mean over the cell's seen person pixels, push-pull
            filled where the cell has too few of them.
    """
    size = sheet.shape[0]
    cells = max(1, round(size / float(np.clip(np.sqrt(seen.sum() / max(target_count, 1)), *CELL_LIMITS))))

    def per_cell(values: np.ndarray) -> np.ndarray:
        """Means over the cells (area resampling handles fractional cell sides)."""
        return cv2.resize(values.astype(np.float32), (cells, cells), interpolation=cv2.INTER_AREA)

    seen_person = seen * person
    seen_share = per_cell(seen_person)
    colour = per_cell(photo * seen_person[..., None]) / np.maximum(seen_share, 1e-9)[..., None]
    known = (seen_share >= MIN_COVERAGE).astype(np.float32)
    if known.any():  # else no cell shows the photo: nothing to fill from
        colour = push_pull(colour, known)
    return size / cells, per_cell(sheet), colour
