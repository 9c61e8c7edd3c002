"""The followed person's part of a portrait mask.

MediaPipe's selfie segmenter marks any person-like region: textured or light background
patches (foliage, a bright wall behind the hair) come out as islands of "person", and so
does another person in the frame. The followed person is one connected region (head, neck,
shoulders) that holds the face; :func:`followed_person` keeps that region and its soft edge
and clears the rest, so that neither an avatar's colours nor an evaluation's targets take
those islands for the person. :func:`person_in_crop` is the one portrait mask of a crop that
photos, evaluation targets and preprocessed clips use.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.tracking.crop import CropBox, in_frame
from core.tracking.face_mesh import PortraitSegmenter

#: Mask value from which a pixel counts as the person's when finding connected regions.
PERSON_LEVEL = 0.5
#: Pixels around the kept region whose soft mask values are kept too (the segmenter's
#: anti-aliased fringe), in mask pixels per 512.
FRINGE_PX_PER_512 = 6


def followed_person(mask: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``mask`` with only the connected person region that holds the face.

    Args:
        mask: [H, W] float32 portrait mask in [0, 1].
        landmarks: [N, 2+] face landmarks in ``mask``'s pixels.
    Returns:
        [H, W] float32: ``mask`` where the region holding most of the landmarks that fall on
        the person (8-connected pixels >= :data:`PERSON_LEVEL`) lies, or within a thin
        fringe of it, else 0. ``mask`` itself when no landmark falls on the person.
    """
    height, width = mask.shape
    count, labels = cv2.connectedComponents((mask >= PERSON_LEVEL).astype(np.uint8), connectivity=8)
    if count <= 2:  # one region or none: nothing to clear
        return mask
    points = np.rint(landmarks[:, :2]).astype(np.int64)
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    under_face = labels[points[inside, 1], points[inside, 0]]
    under_face = under_face[under_face > 0]
    if under_face.size == 0:
        return mask
    region = (labels == np.bincount(under_face).argmax()).astype(np.uint8)
    fringe = max(1, round(FRINGE_PX_PER_512 * max(height, width) / 512))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * fringe + 1, 2 * fringe + 1))
    return np.where(cv2.dilate(region, kernel) > 0, mask, 0.0).astype(np.float32)


def person_in_crop(
    segmenter: PortraitSegmenter,
    crop: np.ndarray,
    box: CropBox,
    landmarks: np.ndarray | None,
    frame_shape: tuple[int, ...],
) -> np.ndarray:
    """The followed person's mask in a crop.

    Args:
        crop: [S, S, 3] uint8 crop cut at ``box`` out of a frame of ``frame_shape`` (H, W, ...).
        landmarks: [N, 2+] the followed face's landmarks in crop pixels; None: no face found.
    Returns:
        [S, S] float32 in [0, 1]: the segmenter's mask, 0 where the crop reaches beyond the
        frame (its padding is no one's), only the region holding the face (:func:`followed_person`).
    """
    height, width = frame_shape[:2]
    mask = segmenter.mask(crop) * in_frame(box, width, height)
    return mask if landmarks is None else followed_person(mask, landmarks)
