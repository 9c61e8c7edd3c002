"""One frame's FLAME parameters as a fit gives them (the tracker's FLAME step, ``omg-avatar
track``) and the avatar's rig reads them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.flame.lbs import batch_rodrigues
from core.geometry.camera import Camera


@dataclass(frozen=True)
class FlameParams:
    """One frame's fit.

    World space is FLAME's, scaled: a FLAME vertex ``x`` (metres, zero global rotation and
    neck) lands at ``scale * R(rotation) @ x + translation``.

    Attributes:
        shape: [n_shape] identity coefficients (the layer's count).
        expression: [n_expression] the fitter's count; pad with zeros for a larger layer.
        jaw: [3] axis-angle.
        eyes: [6] axis-angle of the left eye then the right eye.
        eyelids: [2] left and right, or [0] for models without eyelids.
        rotation: [3] axis-angle of the rigid head pose (about the FLAME origin).
        translation: [3] world units.
        residual_px: RMS distance of the embedded landmarks to MediaPipe's, in pixels.
    """

    shape: np.ndarray
    expression: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    eyelids: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    residual_px: float

    def camera_extrinsic(self, camera: Camera) -> Camera:
        """``camera`` moved so that it sees the unposed head (``scale * x``) as this pose shows it."""
        head_rotation = batch_rodrigues(torch.as_tensor(self.rotation[None], dtype=torch.float64))[0].numpy()
        return Camera(camera.K, camera.R @ head_rotation, camera.R @ self.translation + camera.t,
                      camera.width, camera.height)  # fmt: skip
