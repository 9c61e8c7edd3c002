"""One portrait mask from MediaPipe's two selfie-segmentation models.

The general model (256 x 256 input) draws fine edges (hair, collars, a hood), but on a busy
background it takes whole regions for the person: a door above the head, shelves beside it,
joined to the person so that keeping the face's connected region does not drop them (on a
sample clip a third of its frames lost 8-11 dB to them). The landscape model (144 x 256) is
coarser (blocky edges that spill a few pixels onto the background) but does not make those
mistakes, and fills holes the general model leaves in dark clothes. :func:`fuse_masks`
keeps the general model's mask within :data:`NEAR_PX` of the landscape model's person, and
takes the larger of the two deep inside it (:data:`INSIDE_PX`): the general model's edges,
the landscape model's judgement of where the person is.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Mask value from which the landscape model calls a pixel the person's.
PERSON_LEVEL = 0.5
#: The general model's mask is kept up to this far outside the landscape model's person,
#: in pixels per 512 (its hair strands and soft edges reach past the coarser outline).
NEAR_PX = 24
#: Deeper than this inside the landscape model's person (pixels per 512), the larger of the
#: two masks counts (the general model's holes in clothes filled; its edges kept nearer the outline).
INSIDE_PX = 24


def fuse_masks(general: np.ndarray, landscape: np.ndarray) -> np.ndarray:
    """[H, W] float32 in [0, 1]: the portrait mask of the two models' masks [H, W] in [0, 1]."""
    scale = max(general.shape) / 512.0
    person = (landscape >= PERSON_LEVEL).astype(np.uint8)
    near = cv2.dilate(person, _disk(NEAR_PX * scale))
    inside = cv2.erode(person, _disk(INSIDE_PX * scale), borderType=cv2.BORDER_REPLICATE)
    kept = general * near
    return np.where(inside > 0, np.maximum(kept, landscape), kept).astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    side = 2 * max(1, round(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
