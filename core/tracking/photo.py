"""Portrait photo input: read any common image as RGB uint8, find the face, crop, mask.

``read_image`` honours the EXIF orientation and turns every Pillow mode into RGB uint8:
grayscale is replicated, 16-bit and float images are rescaled (not clipped), palette
images are expanded, and transparency is composited on white (a cut-out portrait keeps
a clean, uniform background instead of whatever colour hides under alpha 0).

``prepare_portrait`` finds the face on a copy downscaled to ``PhotoConfig.max_detect_side``
(MediaPipe crops a 256 px face region anyway, so large detection inputs only cost time),
maps the landmarks back to full resolution and crops the full-resolution image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import TrackingConfig
from core.errors import InputImageError, NoFaceError
from core.tracking.crop import PortraitCrop, crop_portrait
from core.tracking.face_mesh import FaceDetector, FaceMesh, PortraitSegmenter, first_face_around
from core.tracking.person_mask import person_in_crop

#: Background that transparent pixels are composited on.
TRANSPARENT_BACKGROUND = (255, 255, 255)
#: Pixels of the close-up around a face too small for the face mesh's own detector.
SMALL_FACE_CROP = 512


@dataclass(frozen=True)
class Portrait:
    """A photo ready for reconstruction.

    Attributes:
        name: the photo's file name (for messages).
        image: [H, W, 3] uint8 RGB photo at full resolution, upright.
        landmarks: [N, 3] face landmarks in ``image`` pixels.
        crop: the framed [S, S, 3] crop with its box and the landmarks in crop pixels.
        mask: [S, S] float32 portrait mask of the crop in [0, 1] (1 = person).
    """

    name: str
    image: np.ndarray
    landmarks: np.ndarray
    crop: PortraitCrop
    mask: np.ndarray


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as [H, W, 3] uint8 RGB, upright per its EXIF orientation.

    Raises:
        InputImageError: missing, empty, not an image, corrupt or truncated, too large.
    """
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise InputImageError(f"{path.name} is an empty file")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise InputImageError(f"{path.name} is not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise InputImageError(f"{path.name} is too large to read safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputImageError(f"{path.name} is corrupt or truncated ({exc})") from None
    return to_rgb8(image)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> [H, W, 3] uint8 RGB (see the module docstring for the rules)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        gray = _rescale_to_uint8(image)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKGROUND, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _rescale_to_uint8(image: Image.Image) -> np.ndarray:
    """A single-channel 16-bit, 32-bit integer or float image -> [H, W] uint8.

    16-bit modes span 0..65535; float images whose values stay within 1 span 0..1;
    other wide images span the smallest of 255, 65535 or their maximum that holds them.
    """
    values = np.asarray(image, dtype=np.float64)
    peak = values.max(initial=0.0)
    if image.mode.startswith("I;16"):
        full_scale = 65535.0
    elif image.mode == "F" and peak <= 1.0:
        full_scale = 1.0
    else:
        full_scale = next(level for level in (255.0, 65535.0, peak) if peak <= level)
    return np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def prepare_portrait(path: str | Path, config: TrackingConfig) -> Portrait:
    """Read a portrait photo, find its face and frame it (see :func:`portrait_from_image`)."""
    path = Path(path)
    return portrait_from_image(read_image(path), path.name, config)


def portrait_from_image(rgb: np.ndarray, name: str, config: TrackingConfig) -> Portrait:
    """Find the largest human face in ``rgb`` [H, W, 3] uint8, crop and mask it.

    A face counts when the face mesh finds it and MediaPipe's full-range face detector
    agrees (a detection box contains the mesh's centre): the mesh's own short-range
    detector also fires on some animal faces.

    Raises:
        InputImageError: the image or the face is smaller than ``config.photo.min_face_size``.
        NoFaceError: no human face.
    """
    min_face = config.photo.min_face_size
    height, width = rgb.shape[:2]
    if min(height, width) < min_face:
        raise InputImageError(
            f"{name} is {width}x{height} pixels, too small to hold a face of {min_face} pixels"
        )
    landmarks = _find_face(rgb, name, config)
    face_size = float((landmarks[:, :2].max(axis=0) - landmarks[:, :2].min(axis=0)).max())
    if face_size < min_face:
        raise InputImageError(
            f"the face in {name} is {face_size:.0f} pixels, smaller than the minimum of {min_face}"
        )
    crop = crop_portrait(rgb, landmarks, config.crop)
    with PortraitSegmenter() as segmenter:
        mask = person_in_crop(segmenter, crop.image, crop.box, crop.landmarks, rgb.shape)
    return Portrait(name, rgb, landmarks, crop, mask)


def _find_face(rgb: np.ndarray, name: str, config: TrackingConfig) -> np.ndarray:
    """[N, 3] full-resolution landmarks of the largest confirmed face; NoFaceError if none."""
    scale = min(1.0, config.photo.max_detect_side / max(rgb.shape[:2]))
    small = rgb
    if scale < 1.0:
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with (
        FaceMesh(config, static=True) as mesh,
        FaceDetector(config.min_detection_confidence) as detector,
    ):
        faces, boxes = mesh.detect_all(small), detector.boxes(small)
        for landmarks in faces:  # largest first
            centre = (landmarks[:, :2].min(axis=0) + landmarks[:, :2].max(axis=0)) / 2.0
            inside = (boxes[:, :2] <= centre) & (centre <= boxes[:, 2:])
            if inside.all(axis=1).any():
                return landmarks / scale
        # A face too small for the mesh's own short-range detector (a full-body shot): look
        # again in an enlarged crop around each of the full-range detector's faces.
        landmarks = first_face_around(mesh, small, boxes, SMALL_FACE_CROP)
    if landmarks is None:
        raise NoFaceError(name)
    return landmarks / scale
