"""Bilinear sampling of images at continuous pixel coordinates."""

from __future__ import annotations

import cv2
import numpy as np

#: cv2.remap takes maps narrower than 32767 columns; points are sampled in rows this wide.
_ROW = 4096


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``image`` [H, W, C] or [H, W] (float32) at pixel coordinates ``uv`` [N, 2].

    Coordinates are continuous (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, its
    centre at ``+0.5``); points outside take the nearest edge pixel. Returns [N, C] or [N].
    """
    n = len(uv)
    padded = -(-max(n, 1) // _ROW) * _ROW
    maps = np.zeros((2, padded), np.float32)
    maps[:, :n] = (np.nan_to_num(uv, nan=-1.0) - 0.5).T
    sampled = cv2.remap(
        image,
        maps[0].reshape(-1, _ROW),
        maps[1].reshape(-1, _ROW),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return sampled.reshape(padded, *image.shape[2:])[:n]
