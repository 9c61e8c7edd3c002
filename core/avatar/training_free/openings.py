"""Where the photo shows the inside of the eyes and the mouth: between the lids and between
the lips, nowhere else.

The eye caps and the mouth bowl sit a few millimetres behind the lids and lips, closer
than any depth test can tell apart from them: judged by depth alone they take the lids'
and lips' colours, which then slide into view when the driven eyes turn or the mouth
opens (a lip-coloured mouth, a skin crescent on the iris). So a cap or bowl vertex takes
the photo only where it projects inside its opening's polygon (the landmarks' inner lid
or lip loop), shrunk by :data:`INSET_PX`; elsewhere its colour comes from its prior
(the mouth's dark interior and teeth) or from the parts of it that the photo shows.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.avatar.training_free.face_topology import face_topology
from core.avatar.training_free.head_mesh import PARTS
from core.avatar.training_free.sampling import sample_bilinear

#: How far inside an opening's outline a pixel must be to show the inside, in pixels of a
#: 512-pixel crop (the outline pixels mix lid or lip with what is behind them).
INSET_PX = 1.5


def seen_through_openings(part: np.ndarray, uv: np.ndarray, landmark_pixels: np.ndarray, size: int) -> np.ndarray:
    """[N] in [0, 1]: how much the photo may be trusted at each vertex for its part.

    Args:
        part: [N] index into :data:`PARTS` of each vertex.
        uv: [N, 2] the vertices' pixels in the source view.
        landmark_pixels: [478, 2+] the photo's landmarks in crop pixels.
        size: the crop's side in pixels.
    Returns:
        1 for parts other than eyes and mouth; for those, how far inside their opening
        (both eyes for the eye caps) each vertex projects, 0 outside.
    """
    topology = face_topology()
    trust = np.ones(len(part))
    for name, loops in (("eyes", (topology.right_eye, topology.left_eye)), ("mouth", (topology.mouth,))):
        inside = part == PARTS.index(name)
        trust[inside] = sample_bilinear(_opening_mask(landmark_pixels, loops, size), uv[inside])
    return trust


def _opening_mask(landmark_pixels: np.ndarray, loops: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """[S, S] float32, 1 inside the polygons of ``loops`` (landmark indices) shrunk by
    :data:`INSET_PX`, 0 outside, anti-aliased (drawn with sub-pixel vertices)."""
    subpixel_bits = 4
    canvas = np.zeros((size, size), np.uint8)
    polygons = [np.round(landmark_pixels[loop, :2] * 2**subpixel_bits).astype(np.int32) for loop in loops]
    cv2.fillPoly(canvas, polygons, 255, lineType=cv2.LINE_AA, shift=subpixel_bits)
    mask = canvas.astype(np.float32) / 255.0
    inset = INSET_PX * size / 512.0
    # Shrinking by a fractional distance: grey-level erosion by the whole pixels, then a
    # blend towards one more pixel for the fraction.
    whole, fraction = int(inset), inset - int(inset)
    for _ in range(whole):
        mask = cv2.erode(mask, _CROSS)
    return (1.0 - fraction) * mask + fraction * cv2.erode(mask, _CROSS)


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
