"""The hair's pixels in the portrait crop, without a hair segmentation model.

Hair is what is left of the person above the jaw once the face and anything of the
face's skin colour are taken away: the person mask (above 0.5), minus the face oval
(dilated a little, so that its soft edge goes too), minus pixels whose colour is close
to the face's skin (Mahalanobis distance in YCrCb to the colours inside the face oval,
which also takes away ears and a bald scalp), minus everything from halfway between the
cheeks and the chin down (collar and clothes). The mask only decides *where the hair's texture can be copied from*, so
a few stray pixels do no harm; it errs on the side of leaving skin out.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.avatar.training_free.colour import PERSON_THRESHOLD
from core.avatar.training_free.face_topology import CHEEK_EXTREMES, CHIN, face_topology

#: Side of the square image the mask is computed on, pixels (the crop is resized to it).
WORK_SIZE = 256
#: Dilation of the face oval, as a share of the face's height (its edge is skin and shadow).
OVAL_MARGIN = 0.04
#: Hair ends this far from the cheek extremes' row towards the chin's (below: collar
#: and clothes beside the jaw).
JAW_CUT = 0.5
#: Mahalanobis distance (YCrCb) below which a pixel counts as skin.
SKIN_DISTANCE = 4.0
#: Erosion of the face oval before taking skin samples, as a share of the face's height
#: (keeps the oval's edge, which may be hair or background, out of the skin statistics).
SKIN_SAMPLE_EROSION = 0.08
#: Per-channel percentiles of the face's colours kept as skin samples: eyes, brows, a
#: moustache and lips are inside the oval too and would make every dark hair "skin".
SKIN_QUANTILES = (15.0, 85.0)
#: Regulariser of the skin colour covariance (YCrCb units squared): photos of flat
#: colour (paintings, black and white) would otherwise make it singular.
COVARIANCE_FLOOR = 4.0


def hair_mask(image: np.ndarray, mask: np.ndarray, landmark_pixels: np.ndarray) -> np.ndarray:
    """[S, S] bool, the hair's pixels.

    Args:
        image: [S, S, 3] uint8 RGB portrait crop.
        mask: [S, S] float portrait (person) mask in [0, 1].
        landmark_pixels: [478, >=2] landmarks in crop pixels.
    """
    full = mask.shape[0]
    factor = min(1.0, WORK_SIZE / full)  # the mask is a coarse guide: a smaller image is faster
    size = round(full * factor)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    landmark_pixels = landmark_pixels[:, :2] * factor
    face, face_height = _face(landmark_pixels, size)
    grown = _morph(face, cv2.dilate, OVAL_MARGIN * face_height)
    skin = _skin(image, _morph(face, cv2.erode, SKIN_SAMPLE_EROSION * face_height))
    hair = (mask > PERSON_THRESHOLD) & (grown == 0) & ~skin
    cheek_row = landmark_pixels[list(CHEEK_EXTREMES), 1].mean()
    hair[min(size, int(np.ceil(cheek_row + JAW_CUT * (landmark_pixels[CHIN, 1] - cheek_row)))) :] = False
    return cv2.resize(hair.astype(np.uint8), (full, full), interpolation=cv2.INTER_NEAREST) > 0


def dark_outside_the_face(image: np.ndarray, landmark_pixels: np.ndarray, darkness: float) -> np.ndarray:
    """[S, S] bool: the pixels of ``image`` [S, S, 3] uint8 RGB outside the face oval that
    are not of the skin's colour (within :data:`SKIN_DISTANCE` of the colours inside the
    oval, eroded) and darker than ``darkness`` times the skin's median luminance: hair or
    deep shadow, given the ``landmark_pixels`` [478, >=2] in its pixels."""
    face, face_height = _face(landmark_pixels, image.shape[0])
    samples = _morph(face, cv2.erode, SKIN_SAMPLE_EROSION * face_height)
    if not samples.any():
        return np.zeros(face.shape, bool)
    luminance = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    dark = luminance < darkness * np.median(luminance[samples > 0])
    return (face == 0) & ~_skin(image, samples) & dark


def _face(landmark_pixels: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """[S, S] uint8 the face oval's inside (1) in an image of ``size`` pixels, and the
    oval's height in pixels."""
    oval = np.round(landmark_pixels[face_topology().oval, :2]).astype(np.int32)
    face = np.zeros((size, size), np.uint8)
    cv2.fillPoly(face, [oval], 1)
    return face, float(max(np.ptp(oval[:, 1]), 1))


def _morph(region: np.ndarray, operation, radius: float) -> np.ndarray:
    """``region`` [S, S] uint8 dilated or eroded (``operation``) by a disk of ``radius`` pixels."""
    size = 2 * max(1, round(radius)) + 1
    return operation(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


def _skin(image: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """[S, S] bool, pixels of ``image`` [S, S, 3] uint8 RGB whose colour is within
    :data:`SKIN_DISTANCE` of the colours at ``samples`` [S, S] (nonzero: a skin sample)."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float64)
    known = ycrcb[samples > 0]
    low, high = np.percentile(known, SKIN_QUANTILES, axis=0) if len(known) else (0.0, 0.0)
    known = known[((known >= low) & (known <= high)).all(axis=1)]
    if len(known) < 10:
        return np.zeros(samples.shape, bool)
    mean = known.mean(axis=0)
    inverse = np.linalg.inv(np.cov(known, rowvar=False) + COVARIANCE_FLOOR * np.eye(3))
    offset = ycrcb - mean
    return np.einsum("...i,ij,...j->...", offset, inverse, offset) < SKIN_DISTANCE**2
