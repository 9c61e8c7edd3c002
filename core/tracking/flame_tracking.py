"""FLAME fitting, the tracking step after the face mesh: the fitting camera and a fitter
fed frame by frame (shape calibrated once, then warm-started fits). Used by ``omg-avatar
track``, by the network's reconstruction (one photo) and by driving a network avatar
(:meth:`CalibratedFitting.fit_frame` in :mod:`core.driving`)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from core.config import Config
from core.flame import FlameLayer, FlameParams
from core.geometry.camera import Camera
from core.tracking.flame_fitter import FlameFitter
from core.tracking.tracker import TrackedFrame


def fitting_camera(config: Config, size: int) -> Camera:
    """The fixed frontal camera of a ``size`` x ``size`` crop that FLAME is fitted through
    (the config's normalised focal length, ``camera.distance`` from the origin on +z)."""
    return Camera.orbit((0, 0, 0), 0, 0, config.camera.distance, size, size, config.camera.focal_normalized)


def fit_photo(layer: FlameLayer, config: Config, landmarks: np.ndarray, size: int) -> tuple[FlameParams, Camera]:
    """One photo's FLAME fit (its shape calibrated on the photo alone) from its [478, 2 or 3]
    landmarks in the pixels of its ``size`` x ``size`` crop, and the crop's camera with the
    fitted head pose as its extrinsic."""
    fitting = CalibratedFitting.from_config(layer, config, size, calibration_frames=1)
    fit = fitting.add(landmarks)[0]
    return fit, fit.camera_extrinsic(fitting.fitter.camera)


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

    def fit_frame(self, tracked: TrackedFrame) -> TrackedFrame:
        """``tracked`` with its FLAME fit (:attr:`TrackedFrame.flame`: the newest fit made
        now, None without a face or while calibrating) and the ``flame_fit`` milliseconds."""
        if not tracked.tracked:
            return tracked
        started = time.perf_counter()
        fits = self.add(tracked.landmarks)
        stage_ms = {**tracked.stage_ms, "flame_fit": 1000.0 * (time.perf_counter() - started)}
        return dataclasses.replace(tracked, stage_ms=stage_ms, flame=fits[-1] if fits else None)

    def finish(self) -> list[FlameParams]:
        pending, self._pending = self._pending or [], None
        if not pending:
            return []
        self.fitter.calibrate(pending)
        self.fitter.reset()
        return [self.fitter.fit(landmarks) for landmarks in pending]
