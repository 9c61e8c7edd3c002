"""An avatar as it is drawn offline (``omg-avatar drive`` and ``eval``): a level of detail,
a camera, a render backend, a background, the refiner on or off."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.avatar.avatar import Avatar, DrivingState
from core.geometry.camera import Camera
from core.media import rgb8
from core.render import Gaussians, render


@dataclass(frozen=True)
class View:
    """What is drawn: an avatar at a level of detail, through a camera, by a render backend,
    on a background (one value or RGB in [0, 1]), through the avatar's refiner or not."""

    avatar: Avatar
    lod: int
    camera: Camera
    backend: str
    background: float | tuple[float, float, float] = 0.0
    use_refiner: bool = True

    def gaussians(self, state: DrivingState | None = None) -> Gaussians:
        return self.avatar.gaussians(self.lod, state)

    def image(self, gaussians: Gaussians) -> np.ndarray:
        """[H, W, 3] uint8 RGB render."""
        with torch.no_grad():
            background = self.avatar.feature_background(self.background)
            features = render(gaussians, self.camera, self.backend, background=background).features
            return rgb8(self.avatar.rgb(features, self.use_refiner))
