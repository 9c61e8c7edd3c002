"""Hair volume: the cranium shell widened to the portrait's silhouette.

The fitted cranium is a bare skull; hair (and ears) make the head's outline in the photo
larger. Around the cranium centre's projection, in image directions from the sides
over the top (the bottom belongs to the neck and shoulders), compare where the portrait
mask ends with where the head's own points end, and scale the shell about the cranium
centre by that ratio, per image direction. The scaling fades in away from the face oval
(the face keeps its measured shape) and towards the view axis: front and back of the
head get the smallest ratio of the outline, so the back of the head grows with the
hair all around it but never pushes the outline past the mask where it is tightest. Hair
pixels then land on the shell when colours are sampled, and move rigidly with the head.

The back of the head, never seen, gets the hair's colour (:func:`hair_colour`) as a
prior, so it is filled with hair rather than with the face's skin.
"""

from __future__ import annotations

import numpy as np

from core.avatar.training_free.cranium import RADIUS_BLEND_PROGRESS, Ellipsoid
from core.avatar.training_free.rings import smoothstep
from core.geometry.camera import Camera

#: Image directions compared, in degrees from straight up (both sides).
SILHOUETTE_HALF_ANGLE_DEG = 140.0
#: Angular bins over the full circle.
BINS = 72
#: Scale limits (the mask can be wrong: a hat, a hand, a background person).
SCALE_LIMITS = (0.92, 1.6)
#: Bins averaged on each side when smoothing the scale around the circle.
SMOOTHING_BINS = 2
#: Lateral extent (fraction of the direction perpendicular to the view axis) from which
#: a vertex takes its own direction's scale rather than the all-round one.
LATERAL_FULL = 0.5
#: Mask threshold for "person".
MASK_THRESHOLD = 0.5
#: Samples at least this confident count towards the hair colour.
HAIR_SAMPLE_WEIGHT = 0.5


def widen_to_silhouette(
    shell: np.ndarray,
    progress: np.ndarray,
    head_points: np.ndarray,
    cranium: Ellipsoid,
    camera: Camera,
    mask: np.ndarray,
) -> np.ndarray:
    """[S, 3] the shell scaled per image direction to the mask's outline.

    Args:
        shell: [S, 3] shell vertices (head space).
        progress: [S] their ring progress (0 at the face oval, 1 at the back pole).
        head_points: [P, 3] every point of the head so far (face and shell), whose
            projection is the head's current outline.
        cranium: its centre is the scaling centre.
        camera: the source view.
        mask: [S, S] portrait mask.
    """
    centre_px = camera.project(cranium.centre)[0]
    bin_angle = (np.arange(BINS) + 0.5) * 2 * np.pi / BINS  # image angle, 0 = up, clockwise
    used = np.abs(np.angle(np.exp(1j * bin_angle))) <= np.radians(SILHOUETTE_HALF_ANGLE_DEG)
    model = _outline_radius(camera.project(head_points)[0] - centre_px, bin_angle)
    person = _mask_radius(mask, centre_px, bin_angle, model.max() * SCALE_LIMITS[1] * 1.2)
    ratio = np.where(used & (model > 0), np.clip(person / np.maximum(model, 1e-9), *SCALE_LIMITS), 1.0)
    ratio = _circular_mean(ratio, SMOOTHING_BINS)
    all_round = ratio[used].min()

    offset = shell - cranium.centre
    in_camera = offset @ camera.R.T
    angle = np.arctan2(in_camera[:, 0], -in_camera[:, 1]) % (2 * np.pi)  # 0 = image up, clockwise
    lateral = np.linalg.norm(in_camera[:, :2], axis=1) / np.linalg.norm(in_camera, axis=1)
    own = np.interp(angle, bin_angle, ratio, period=2 * np.pi)
    scale = all_round + (own - all_round) * smoothstep(lateral / LATERAL_FULL)
    scale = 1.0 + (scale - 1.0) * smoothstep(progress / RADIUS_BLEND_PROGRESS)
    return cranium.centre + offset * scale[:, None]


def _outline_radius(offsets: np.ndarray, bin_angle: np.ndarray) -> np.ndarray:
    """[B] the farthest projected point in each angular bin (0 for empty bins), for
    pixel offsets [P, 2] from the centre."""
    angle = np.arctan2(offsets[:, 0], -offsets[:, 1]) % (2 * np.pi)
    bins = np.minimum((angle / (2 * np.pi) * len(bin_angle)).astype(int), len(bin_angle) - 1)
    radius = np.zeros(len(bin_angle))
    np.maximum.at(radius, bins, np.linalg.norm(offsets, axis=1))
    return radius


def _mask_radius(mask: np.ndarray, centre: np.ndarray, bin_angle: np.ndarray, reach: float) -> np.ndarray:
    """[B] distance from ``centre`` (pixels) to where the mask first ends along each bin's
    direction (``reach`` where it does not end before)."""
    steps = np.arange(0.0, reach, 1.0)
    direction = np.column_stack([np.sin(bin_angle), -np.cos(bin_angle)])  # [B, 2] image x, y
    samples = centre + direction[:, None, :] * steps[None, :, None]  # [B, R, 2]
    column = np.clip(samples[..., 0].astype(int), 0, mask.shape[1] - 1)
    row = np.clip(samples[..., 1].astype(int), 0, mask.shape[0] - 1)
    inside_image = (samples[..., 0] >= 0) & (samples[..., 0] < mask.shape[1]) & (samples[..., 1] >= 0) & (
        samples[..., 1] < mask.shape[0]
    )
    person = (mask[row, column] >= MASK_THRESHOLD) & inside_image
    ended = ~person
    first_end = np.where(ended.any(axis=1), ended.argmax(axis=1), len(steps) - 1)
    return steps[first_end]


def _circular_mean(values: np.ndarray, half_window: int) -> np.ndarray:
    """Moving average of periodic ``values`` [B] over ``2 half_window + 1`` bins."""
    padded = np.concatenate([values[-half_window:], values, values[:half_window]])
    kernel = np.ones(2 * half_window + 1) / (2 * half_window + 1)
    return np.convolve(padded, kernel, mode="valid")


def hair_colour(colour: np.ndarray, weight: np.ndarray, rows: np.ndarray, on_shell: np.ndarray, eye_row: float) -> np.ndarray:
    """[3] the hair's colour: the median of the well-seen shell samples above the eyes
    (the top of the head in the photo: hair, or a bald scalp, or a hat).

    Args:
        colour: [N, 3] sampled colours of the finest level's vertices.
        weight: [N] their confidence.
        rows: [N] image rows of their projections.
        on_shell: [N] bool, the vertex belongs to the shell.
        eye_row: image row of the eyes.
    """
    seen = on_shell & (weight >= HAIR_SAMPLE_WEIGHT) & (rows < eye_row)
    if not seen.any():
        seen = on_shell & (weight > 0)
    return np.median(colour[seen], axis=0) if seen.any() else np.full(3, 0.5)
