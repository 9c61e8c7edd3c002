"""Hair volume and texture: the cranium shell fitted to the portrait's silhouette row by
row, and the unseen back of the head covered with the photo's hair.

Volume: the fitted cranium is a bare skull; hair (and ears) make the head's outline in
the photo larger, or, for flat hair, smaller. Two measurements of the source view,
in camera axes about the cranium centre:

- the crown: the shell's top is scaled to the mask's top when the mask ends inside
  the crop; when the mask reaches the crop's edge the hair goes on above it, and the top
  is extrapolated from how much the mask narrows towards that edge (never lowered);
- rows: each image row's cross-section of the head is taken to be an ellipse. Its
  half-width on each side follows the mask's extent on that row (the run of person
  pixels through the cranium centre's column), relative to the head's current outline
  there; its half-depth grows (or shrinks) by the same lateral thickness of hair (the
  mask's extent counting only hair pixels beyond the outline: ears are not hair), so
  the back of the head gets the volume seen at the sides and a side view keeps the
  silhouette. What sticks out beyond the hair (ears) widens only the vertices that face
  sideways. Rows from the cheeks down fade out (the mask there is neck, shoulders,
  and long hair that belongs to the shoulder sheet).

Both scalings fade in away from the face oval (the face keeps its measured shape).
Only vertices move, so the topology (and every LOD's Gaussian count) is unchanged.

Texture (:func:`hidden_hair`): a shell vertex the photo does not see takes the photo's
colour at its front-back mirror image (reflected through the cranium's coronal plane,
which lands on the visible hair at the same height and side) when that pixel is hair
(:mod:`.hair_mask`); otherwise the colour of a hair pixel of the same image row, chosen
by the vertex's azimuth around the head, so the back repeats the texture of the hair
at the sides rather than taking one flat colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.avatar.training_free.colour import PERSON_THRESHOLD
from core.avatar.training_free.cranium import Ellipsoid
from core.avatar.training_free.face_topology import CHEEK_EXTREMES, CHIN
from core.avatar.training_free.rings import smoothstep
from core.avatar.training_free.sampling import sample_bilinear
from core.geometry.camera import Camera

#: Ring progress over which the fit to the mask fades in (faster than the shell's own
#: blend from the face to the cranium: hair stands out right behind the face oval).
FIT_PROGRESS = 0.15
#: Scale limits of the crown height, the half-widths and the half-depth (the mask can be
#: wrong: a hat, a hand, a background person; flat hair can be inside the typical skull).
SCALE_LIMITS = (0.75, 1.6)
#: Rows whose head outline is narrower than this share of its widest (the crown's, where
#: a ratio of small widths is noise) take the ratio of the nearest wider row.
RELIABLE_WIDTH = 0.3
#: Rows averaged when smoothing the ratios, as a share of the crop.
ROW_SMOOTHING = 0.03
#: The mask's top at most this many pixels (of a 512 pixel crop) below the crop's top
#: edge: the hair may go on above the crop.
CROP_EDGE_AT_512 = 3.0
#: Smallest cross-section half-depth, in cranium half-depths (the ellipse's depth goes to
#: 0 at the crown, where a thickness would otherwise make an unbounded ratio).
MIN_SECTION = 0.4
#: Sideways share of a vertex's horizontal direction (|x| / |(x, z)| in camera axes) from
#: which it takes the whole person mask's width; more frontal or backward vertices take
#: the hair's only, so ears widen the head where they are, not all the way round.
SIDEWAYS_FULL = 0.9
#: Times the texture of a row's hair pixels repeats around the head.
TEXTURE_REPEATS = 2.0


def widen_to_silhouette(
    shell: np.ndarray,
    progress: np.ndarray,
    face_points: np.ndarray,
    cranium: Ellipsoid,
    camera: Camera,
    mask: np.ndarray,
    hair: np.ndarray,
) -> np.ndarray:
    """[S, 3] the shell fitted to the mask's outline (see the module docstring).

    Args:
        shell: [S, 3] shell vertices (head space).
        progress: [S] their ring progress (0 at the face oval, 1 at the back pole).
        face_points: [478, 3] head-space landmarks (the face; with the shell, the head's
            current outline in the source view).
        cranium: its centre is the scaling centre, its radii the skull's size.
        camera: the source view.
        mask: [H, W] portrait mask.
        hair: [H, W] bool, its hair pixels (:func:`.hair_mask.hair_mask`).
    """
    fade = smoothstep(progress / FIT_PROGRESS)
    person = mask >= PERSON_THRESHOLD
    centre_px = camera.project(cranium.centre)[0]
    in_camera = (shell - cranium.centre) @ camera.R.T  # x right, y down, z away from the camera
    # The skull's cross-section half-depth at each vertex's height (before the crown moves it).
    section = cranium.radii[2] * np.sqrt(np.clip(1.0 - (in_camera[:, 1] / cranium.radii[1]) ** 2, MIN_SECTION**2, 1.0))

    pixels = camera.project(np.concatenate([face_points, shell]))[0]
    crown = _crown_scale(person, _outline(pixels, mask.shape), pixels[:, 1].min(), centre_px)
    in_camera[:, 1] *= np.where(in_camera[:, 1] < 0, 1.0 + (crown - 1.0) * fade, 1.0)

    moved = cranium.centre + in_camera @ camera.R
    outline = _outline(camera.project(np.concatenate([face_points, moved]))[0], mask.shape)
    face_rows = camera.project(face_points[[*CHEEK_EXTREMES, CHIN]])[0][:, 1]
    column = int(np.clip(round(centre_px[0]), 0, mask.shape[1] - 1))
    rows = np.arange(mask.shape[0])
    keep = 1.0 - smoothstep((rows - face_rows[:2].mean()) / max(face_rows[2] - face_rows[:2].mean(), 1.0))
    hair_ratios, thickness = _row_fit(person & (outline | hair), outline, column, keep)
    person_ratios, _ = _row_fit(person, outline, column, keep)
    pixel_size = camera.world_to_camera(cranium.centre)[2] / camera.K[0, 0]  # world units per pixel at the centre

    vertex_row = camera.project(moved)[0][:, 1]
    side = (in_camera[:, 0] >= 0).astype(int)
    hair_ratio, person_ratio = (
        np.choose(side, [np.interp(vertex_row, rows, ratio) for ratio in ratios])
        for ratios in (hair_ratios, person_ratios)
    )
    # What sticks out beyond the hair (ears) widens only the vertices facing sideways.
    sideways = np.abs(in_camera[:, 0]) / np.maximum(np.hypot(in_camera[:, 0], in_camera[:, 2]), 1e-12)
    own_ratio = hair_ratio + (person_ratio - hair_ratio) * smoothstep(sideways / SIDEWAYS_FULL)
    depth_ratio = np.clip(1.0 + np.interp(vertex_row, rows, thickness) * pixel_size / section, *SCALE_LIMITS)
    in_camera[:, 0] *= 1.0 + (own_ratio - 1.0) * fade
    in_camera[:, 2] *= 1.0 + (depth_ratio - 1.0) * fade
    return cranium.centre + in_camera @ camera.R


def _row_fit(
    target: np.ndarray, outline: np.ndarray, column: int, keep: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Per image row [H]: the left and right scales that take the ``outline`` [H, W] bool's
    extent from ``column`` to the ``target`` [H, W] bool region's, and the lateral
    thickness between them (pixels, mean of both sides; negative where the outline is the
    wider). The scales fade to 1 with ``keep`` [H] in [0, 1] (0: rows of the neck)."""
    ratios, thickness = [], np.zeros(len(target))
    for model, extent in zip(_row_extents(outline, column), _row_extents(target, column)):
        ratio = 1.0 + (_row_ratio(model, extent) - 1.0) * keep
        ratios.append(ratio)
        thickness += 0.5 * (ratio - 1.0) * model
    return (ratios[0], ratios[1]), thickness


def _outline(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[H, W] bool, the convex hull of projected points ``pixels`` [P, 2]: the head's outline."""
    region = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(pixels).astype(np.int32))
    cv2.fillPoly(region, [hull[:, 0]], 1)
    return region > 0


def _crown_scale(person: np.ndarray, outline: np.ndarray, model_top: float, centre_px: np.ndarray) -> float:
    """Scale of the shell's height above the centre (the outline's top at row
    ``model_top``, pixels) that puts its top on the mask's top, within the outline's
    columns. When the mask reaches the crop's top edge, the hair goes on above it: the
    top is then where an ellipse through the mask's widest row above the centre and its
    width at the crop's edge closes (and never below the current top)."""
    columns = np.flatnonzero(outline.any(axis=0))
    person = person[: max(1, int(centre_px[1])), columns[0] : columns[-1] + 1]
    band = person.any(axis=1)
    height = centre_px[1] - model_top
    if not band.any() or height < 1.0:
        return 1.0
    mask_top = np.flatnonzero(band)[0]
    if mask_top > CROP_EDGE_AT_512 * len(outline) / 512:
        return float(np.clip((centre_px[1] - mask_top) / height, *SCALE_LIMITS))
    widths = person.sum(axis=1)
    closing = np.sqrt(max(1.0 - (widths[mask_top] / widths.max()) ** 2, 1e-6))
    return float(np.clip(max((centre_px[1] - mask_top) / closing / height, 1.0), *SCALE_LIMITS))


def _row_extents(region: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right extents [H] (pixels) of the run of ``region`` [H, W] bool through
    ``column`` on every row (0 where the row's ``column`` is outside the region)."""
    width = region.shape[1]
    columns = np.arange(width)
    outside = ~region
    left_edge = np.where(outside[:, :column], columns[:column], -1).max(axis=1, initial=-1)
    right_edge = np.where(outside[:, column + 1 :], columns[column + 1 :], width).min(axis=1, initial=width)
    inside = region[:, column]
    return np.where(inside, column - left_edge - 0.5, 0.0), np.where(inside, right_edge - column - 0.5, 0.0)


def _row_ratio(model: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[H] target extent over outline extent per row (both [H] pixels), clipped, taken from
    the nearest reliable row where the outline is narrow, smoothed along the rows."""
    if model.max() <= 0:
        return np.ones(len(model))
    reliable = model >= RELIABLE_WIDTH * model.max()
    rows = np.arange(len(model))
    ratio = np.clip(target[reliable] / model[reliable], *SCALE_LIMITS)
    ratio = np.interp(rows, rows[reliable], ratio)
    window = max(1, round(ROW_SMOOTHING * len(model)))
    return np.convolve(np.pad(ratio, window, mode="edge"), np.ones(2 * window + 1) / (2 * window + 1), mode="valid")


def hidden_hair(
    points: np.ndarray, cranium: Ellipsoid, camera: Camera, image: np.ndarray, hair: np.ndarray
) -> np.ndarray:
    """[N, 3] hair colours for ``points`` [N, 3] (head space) the photo does not see (see
    the module docstring); all NaN when ``hair`` has no pixel (the caller keeps its fill).

    Args:
        cranium: its centre's coronal plane is the mirror.
        camera: the source view.
        image: [H, W, 3] float32 photo.
        hair: [H, W] bool hair mask (:func:`.hair_mask.hair_mask`).
    """
    if not hair.any():
        return np.full((len(points), 3), np.nan)
    mirrored = points * np.array([1.0, 1.0, -1.0]) + np.array([0.0, 0.0, 2.0 * cranium.centre[2]])
    uv = camera.project(mirrored)[0]
    height, width = hair.shape
    column, row = (np.clip(np.round(uv[:, axis]).astype(int), 0, size - 1) for axis, size in ((0, width), (1, height)))
    on_hair = hair[row, column]

    in_camera = (points - cranium.centre) @ camera.R.T
    turn = np.arctan2(in_camera[:, 0], in_camera[:, 2]) / (2 * np.pi) + 0.5  # [0, 1) around the head
    synthesised = _row_pixels(hair, row, np.abs((turn * TEXTURE_REPEATS) % 2.0 - 1.0))
    pixels = np.where(on_hair[:, None], uv, synthesised)
    return sample_bilinear(image, pixels).astype(np.float64)


def _row_pixels(hair: np.ndarray, rows: np.ndarray, position: np.ndarray) -> np.ndarray:
    """[N, 2] pixel (x, y) of a hair pixel on each of ``rows`` [N] (the nearest row with hair
    where a row has none), the ``position`` [N] in [0, 1] along that row's hair pixels."""
    hair_rows, hair_columns = np.nonzero(hair)  # row-major: each row's columns in order
    counts = np.bincount(hair_rows, minlength=len(hair))
    with_hair = np.flatnonzero(counts)
    nearest = with_hair[np.clip(np.searchsorted(with_hair, rows), 0, len(with_hair) - 1)]
    below = with_hair[np.clip(np.searchsorted(with_hair, rows) - 1, 0, len(with_hair) - 1)]
    nearest = np.where(np.abs(below - rows) < np.abs(nearest - rows), below, nearest)
    starts = np.concatenate([[0], np.cumsum(counts)])[nearest]
    index = starts + np.minimum((position * counts[nearest]).astype(int), counts[nearest] - 1)
    return np.column_stack([hair_columns[index], nearest]).astype(np.float64)
