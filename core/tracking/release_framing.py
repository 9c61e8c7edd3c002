"""The OMG-Avatar release's framing of a source photo, from a FLAME fit in our framing.

The release crops a square of 1.65 head-box sides (its head detector's box, hair included)
around the head and tracks FLAME in it at focal 12; its network was trained on such crops. Our
tracker frames the face more tightly (``tracking.crop``: 1.8 face-landmark box sides, centred a
little above), so the head would look about 10 % larger and sit lower than the network saw in
training. The release's framing shows up in its tracked cameras: FLAME's origin lies on the
optical axis at a distance of about 10.5 world units (its example driver, 241 frames:
``T = (-0.02, -0.04, 10.48) +- (0.04, 0.03, 0.14)``). :func:`release_framed` re-crops a portrait
so that a fitted head lands there: centred on FLAME's projected origin, zoomed so that the origin's
depth becomes :data:`HEAD_DISTANCE` (within :data:`ZOOM_RANGE`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core.geometry.camera import Camera
from core.tracking.crop import CropBox, PortraitCrop, crop_image
from core.tracking.face_mesh import PortraitSegmenter
from core.tracking.photo import Portrait

#: FLAME's origin's distance from the camera in the release's crops (world units, FLAME x5).
HEAD_DISTANCE = 10.5
#: The re-crop's zoom is kept in this range: our framing differs from the release's by about
#: 10 %, so a larger change means the fit's depth is wrong (a poor fit, a FLAME whose landmarks
#: do not suit the face), and the photo keeps a framing close to ours.
ZOOM_RANGE = (0.75, 1.5)


def release_box(box: CropBox, camera: Camera) -> CropBox:
    """The source-image box of the release's framing.

    Args:
        box: the portrait's crop box.
        camera: the crop's camera with the fitted head pose as its extrinsic (world = FLAME x5).
    """
    origin = camera.t  # FLAME's origin in camera space
    centre, _ = camera.project(np.zeros((1, 3)))
    zoom = float(np.clip(HEAD_DISTANCE / origin[2], *ZOOM_RANGE))  # > 1: the head is nearer than in the release's
    centre = box.to_source(centre)[0]
    side = max(1, round(zoom * box.side))
    return CropBox(round(centre[0] - side / 2), round(centre[1] - side / 2), side, box.size)


def release_framed(portrait: Portrait, camera: Camera) -> Portrait:
    """``portrait`` cropped in the release's framing (see the module docstring), with its landmarks
    moved and its portrait mask made anew for the new crop."""
    box = release_box(portrait.crop.box, camera)
    crop = PortraitCrop(crop_image(portrait.image, box), box, box.to_crop(portrait.landmarks))
    with PortraitSegmenter() as segmenter:
        mask = segmenter.mask(crop.image)
    return dataclasses.replace(portrait, crop=crop, mask=mask)
