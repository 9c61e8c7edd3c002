"""FLAME fitting set up from a config: the FLAME layer with its landmark embedding, the
fitting camera, and a fitter fed frame by frame (shape calibrated once, then warm-started
fits). Used by ``omg-avatar track``, by the network's reconstruction (one photo) and by
driving a network avatar (a video or webcam)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config import Config, FlameConfig
from core.flame import FlameLayer, load_flame_model, load_landmark_embedding, resolve_model_file
from core.geometry.camera import Camera
from core.tracking.flame_fitter import FlameFitter, FlameParams


def load_flame_layer(flame_file: Path, config: FlameConfig, embedding_file: Path | None = None) -> FlameLayer:
    """The FLAME layer of ``flame_file`` with ``config``'s component counts and the MediaPipe
    landmark embedding (``embedding_file``, default the config's)."""
    model = load_flame_model(flame_file)
    embedding_file = embedding_file or resolve_model_file(config.landmark_embedding_file)
    embedding = load_landmark_embedding(embedding_file, n_faces=model.faces.shape[0])
    return FlameLayer(model, config.n_shape, config.n_expression, embedding)


def fitting_camera(config: Config, size: int) -> Camera:
    """The fixed frontal camera of a ``size`` x ``size`` crop that FLAME is fitted through
    (the config's normalised focal length, ``camera.distance`` from the origin on +z)."""
    return Camera.orbit((0, 0, 0), 0, 0, config.camera.distance, size, size, config.camera.focal_normalized)


class CalibratedFitting:
    """Feeds tracked landmarks to a FLAME fitter: calibrates shape on the first frames, then fits.

    ``add`` returns the fits it could make (none while it collects calibration frames,
    all the collected ones once it has enough); ``finish`` calibrates on what it has.
    """

    def __init__(self, fitter: FlameFitter, calibration_frames: int):
        self.fitter = fitter
        self._wanted = max(1, calibration_frames)
        self._pending: list[np.ndarray] | None = []

    @classmethod
    def from_config(
        cls, layer: FlameLayer, config: Config, size: int, calibration_frames: int | None = None
    ) -> CalibratedFitting:
        """Fitting of ``size`` x ``size`` crops' landmarks with ``config``'s camera, scale and
        fitter settings; ``calibration_frames`` defaults to the fitter config's."""
        fitter_config = config.tracking.fitter
        fitter = FlameFitter(layer, fitting_camera(config, size), fitter_config, config.flame.scale)
        return cls(fitter, fitter_config.calibration_frames if calibration_frames is None else calibration_frames)

    def add(self, landmarks: np.ndarray) -> list[FlameParams]:
        """[478, 2 or 3] landmarks in crop pixels -> the fits made now (see the class docstring)."""
        if self._pending is None:
            return [self.fitter.fit(landmarks)]
        self._pending.append(landmarks)
        return self.finish() if len(self._pending) >= self._wanted else []

    def finish(self) -> list[FlameParams]:
        pending, self._pending = self._pending or [], None
        if not pending:
            return []
        self.fitter.calibrate(pending)
        self.fitter.reset()
        return [self.fitter.fit(landmarks) for landmarks in pending]
