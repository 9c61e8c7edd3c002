"""Square head-and-shoulders crop computed from face landmarks (photos and video frames alike).

Framing (``CropConfig``): the face size is the larger side of the landmarks' 2D box; the
crop side is ``face_scale`` face sizes and its centre sits ``vertical_offset`` face sizes
below the face box centre (negative: above), so the face is centred horizontally with
room for the shoulders below. The crop box is snapped to whole source pixels, which
makes the crop and the landmark mapping exact.

Parts of the box outside the image are black (zeros), as in GAGAvatar's crops and the
sample driving videos: an honest "no data" that the portrait segmenter reads as
background, instead of smeared edge pixels that it would read as body.

Coordinates are continuous pixels (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``), as
for MediaPipe landmarks and ``core.geometry.camera``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.config import CropConfig
from core.errors import InputImageError

#: Largest shrink (box side / crop side) done by the bilinear warp alone.
MAX_BILINEAR_SHRINK = 2.0


@dataclass(frozen=True)
class CropBox:
    """A square region of a source image and its scaling to an output crop.

    Attributes:
        x0, y0: top-left corner in source pixels.
        side: side of the region in source pixels.
        size: side of the output crop in pixels.
    """

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per source pixel."""
        return self.size / self.side

    @property
    def matrix(self) -> np.ndarray:
        """[2, 3] affine map from source pixels to crop pixels."""
        s = self.scale
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]])

    def overlaps(self, width: int, height: int) -> bool:
        """Whether the box shares any pixel with a ``width`` x ``height`` image."""
        return self.x0 < width and self.y0 < height and self.x0 + self.side > 0 and self.y0 + self.side > 0

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Source-pixel points [..., 2 or 3] -> crop pixels (a ``z`` column is scaled like ``x``)."""
        out = _float_copy(points)
        out[..., :2] -= (self.x0, self.y0)
        out *= self.scale
        return out

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Crop-pixel points [..., 2 or 3] -> source pixels (inverse of :meth:`to_crop`)."""
        out = _float_copy(points)
        out /= self.scale
        out[..., :2] += (self.x0, self.y0)
        return out


@dataclass(frozen=True)
class PortraitCrop:
    """A crop and the landmarks that framed it.

    Attributes:
        image: [size, size, C] crop of the source image.
        box: where the crop came from.
        landmarks: [N, 3] the face landmarks in crop pixels.
    """

    image: np.ndarray
    box: CropBox
    landmarks: np.ndarray


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """[4] box (x0, y0, x1, y1) of ``landmarks`` [N, 2 or 3] in their own pixels."""
    return np.concatenate([landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)])


def crop_box_from_landmarks(landmarks: np.ndarray, config: CropConfig) -> CropBox:
    """The framing box of a face.

    Args:
        landmarks: [N, 2 or 3] face landmarks in source pixels.
        config: framing and output size.
    """
    low, high = np.split(landmark_box(landmarks), 2)
    face_size = float((high - low).max())
    centre_x, centre_y = (low + high) / 2.0
    centre_y += config.vertical_offset * face_size
    side = max(1, round(config.face_scale * face_size))
    return CropBox(round(centre_x - side / 2), round(centre_y - side / 2), side, config.output_size)


def crop_image(image: np.ndarray, box: CropBox) -> np.ndarray:
    """Cut ``box`` out of ``image`` [H, W, 3] or [H, W] and resize it to [size, size(, 3)].

    One bilinear warp does the cut, the resize and the black padding. A box more than
    :data:`MAX_BILINEAR_SHRINK` times larger than the crop is first area-averaged down
    (only the part of the image under the box), so large photos do not alias.
    """
    height, width = image.shape[:2]
    if not box.overlaps(width, height):
        raise InputImageError(
            f"cannot frame the face: its crop ({box.side} px at {box.x0}, {box.y0}) lies outside "
            f"the {width}x{height} image"
        )
    x0, y0 = max(box.x0, 0), max(box.y0, 0)
    x1, y1 = min(box.x0 + box.side, width), min(box.y0 + box.side, height)
    source, matrix = image, box.matrix
    if box.side > MAX_BILINEAR_SHRINK * box.size:
        shrunk_size = (max(1, round((x1 - x0) * box.scale)), max(1, round((y1 - y0) * box.scale)))
        source = cv2.resize(image[y0:y1, x0:x1], shrunk_size, interpolation=cv2.INTER_AREA)
        # A shrunk pixel u covers (x1 - x0) / shrunk_width source pixels from x0.
        matrix = np.array(
            [
                [box.scale * (x1 - x0) / shrunk_size[0], 0.0, box.scale * (x0 - box.x0)],
                [0.0, box.scale * (y1 - y0) / shrunk_size[1], box.scale * (y0 - box.y0)],
            ]
        )
    # warpAffine addresses pixel centres: shift the continuous-coordinate map by half a pixel.
    centred = matrix.copy()
    centred[:, 2] += 0.5 * np.diag(matrix[:, :2]) - 0.5
    return cv2.warpAffine(
        source,
        centred,
        (box.size, box.size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def in_frame(box: CropBox, width: int, height: int) -> np.ndarray:
    """[S, S] float32 share of each pixel of ``box``'s crop that lies inside a ``width`` x
    ``height`` image (0 where :func:`crop_image` pads)."""

    def along(start: int, extent: int) -> np.ndarray:
        edges = start + np.arange(box.size + 1) * (box.side / box.size)  # crop pixel edges, source pixels
        low, high = np.clip(edges[:-1], 0, extent), np.clip(edges[1:], 0, extent)
        return (high - low) / (box.side / box.size)

    return np.outer(along(box.y0, height), along(box.x0, width)).astype(np.float32)


def crop_portrait(image: np.ndarray, landmarks: np.ndarray, config: CropConfig) -> PortraitCrop:
    """Frame the face given by ``landmarks`` [N, 3] (source pixels) in ``image`` [H, W, C]."""
    box = crop_box_from_landmarks(landmarks, config)
    return PortraitCrop(crop_image(image, box), box, box.to_crop(landmarks))


def _float_copy(points: np.ndarray) -> np.ndarray:
    """A float copy of ``points`` (float32 stays float32, integers become float32)."""
    points = np.asarray(points)
    return points.astype(np.result_type(points.dtype, np.float32), copy=True)
