"""One-Euro filters (Casiez, Roussel, Vogel, CHI 2012) for time-stamped arrays and face landmarks.

:class:`OneEuroFilter` filters each element on its own: a low-pass filter whose cutoff
rises with the element's (low-passed) speed, ``cutoff = min_cutoff + beta * |speed|``.
Slow signals are smoothed hard (less jitter), fast ones lightly (less lag). Speeds are in
the signal's units per second, so ``beta`` depends on those units (pixels for landmarks).

:class:`LandmarkSmoother` smooths face landmarks in two stages, because one elementwise
filter on raw points lags head motion (each point sees only its own, noisy speed) and
flattens blinks (a lid point's speed is averaged over a second before the cutoff opens):

1. the rigid head motion: a similarity fitted to landmarks that expressions barely move
   (:data:`~core.tracking.head_pose.STABLE_LANDMARKS`) against the first frame, filtered
   as 7 numbers in pixels;
2. the expression: every landmark with that motion removed, filtered per landmark with
   its group's parameters (:data:`EXPRESSION_GROUPS`: eyelids, lips, irises, the rest).

Pose noise is averaged over many points, so the pose filter may react fast; blinks and
mouth openings are fast but large, so their groups open their cutoff on speed at once.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from core.config import OneEuroConfig, SmoothingConfig
from core.tracking.head_pose import STABLE_LANDMARKS

#: Expression groups with their own smoothing (names from core.config.SMOOTHING_GROUPS);
#: every landmark not listed is in "rest".
EXPRESSION_GROUPS = {
    "eyelids": (
        33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
        263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    ),
    "lips": (
        61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    ),
    "irises": tuple(range(468, 478)),
}  # fmt: skip

#: Entries of the pose vector: translation (3), rotation vector (3), log scale (1); the
#: last four are multiplied by the reference's radius so that all are pixels.
POSE_SIZE = 7


class OneEuroFilter:
    """Array-valued One-Euro filter; its parameters may be changed between calls.

    Attributes (floats, or arrays broadcasting against the filtered values):
        min_cutoff: cutoff frequency at zero speed, Hz (lower: smoother and laggier).
        beta: cutoff increase per unit of speed (higher: less lag on fast motion).
        d_cutoff: cutoff frequency of the speed estimate, Hz (higher: the cutoff opens
            sooner at motion onset, and noise opens it more).
    """

    def __init__(self, min_cutoff: float | np.ndarray, beta: float | np.ndarray, d_cutoff: float | np.ndarray):
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    @classmethod
    def from_config(cls, config: SmoothingConfig | OneEuroConfig) -> OneEuroFilter:
        return cls(config.min_cutoff, config.beta, config.d_cutoff)

    def reset(self) -> None:
        """Forget the past: the next value passes through unchanged."""
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time = 0.0

    def __call__(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter ``value`` (any shape, constant between resets) taken at ``timestamp_s``.

        Returns:
            float64 array shaped like ``value``. A timestamp not after the previous one
            returns the previous estimate unchanged.
        """
        value = np.asarray(value, dtype=np.float64)
        if self._value is None:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), timestamp_s
            return self._value.copy()
        if value.shape != self._value.shape:
            raise ValueError(
                f"value shape {value.shape} differs from {self._value.shape}; reset first"
            )
        dt = timestamp_s - self._time
        if dt <= 0.0:
            return self._value.copy()
        speed = (value - self._value) / dt
        self._speed += _smoothing_factor(self.d_cutoff, dt) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value += _smoothing_factor(cutoff, dt) * (value - self._value)
        self._time = timestamp_s
        return self._value.copy()


def _smoothing_factor(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    """Exponential-smoothing weight of a new sample for a low-pass at ``cutoff`` Hz."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def fit_rigid(reference: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The similarity taking centred ``reference`` [K, 3] onto ``points`` [K, 3] (Kabsch).

    Returns:
        centroid [3] of ``points``, rotation [3, 3] (proper) and scale, such that
        ``points ~ scale * reference @ rotation.T + centroid``.
    """
    centroid = points.mean(axis=0)
    centred = points - centroid
    u, _, vt = np.linalg.svd(centred.T @ reference)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    scale = math.sqrt((centred**2).sum() / (reference**2).sum())
    return centroid, u @ flip @ vt, scale


class LandmarkSmoother:
    """Two-stage One-Euro smoothing of [N, 3] landmarks in pixels (see the module docstring).

    ``set_min_cutoff`` scales every group's minimum cutoff by one factor, so a single
    control (the app's smoothing slider) makes all of them smoother or faster together.
    """

    def __init__(self, config: SmoothingConfig):
        self._config = config
        self._scale = 1.0
        self._pose = OneEuroFilter.from_config(config.group("pose"))
        self._expression = OneEuroFilter(0.0, 0.0, 0.0)  # per-landmark parameters set on the first frame
        self._base_min_cutoff = np.zeros((0, 1))
        self.reset()

    def reset(self) -> None:
        """Forget the past (the reference head too): the next landmarks pass through unchanged."""
        self._reference: np.ndarray | None = None
        self._radius = 1.0
        self._pose.reset()
        self._expression.reset()

    def set_min_cutoff(self, min_cutoff_hz: float) -> None:
        """Make the default minimum cutoff ``min_cutoff_hz`` and scale every group's with it."""
        self._scale = float(min_cutoff_hz) / self._config.min_cutoff
        self._pose.min_cutoff = self._config.group("pose").min_cutoff * self._scale
        self._expression.min_cutoff = self._base_min_cutoff * self._scale

    def __call__(self, landmarks: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Smooth one frame's landmarks [N, 3] (pixels) taken at ``timestamp_s``; float64 [N, 3]."""
        landmarks = np.asarray(landmarks, dtype=np.float64)
        if self._reference is None or len(landmarks) != len(self._base_min_cutoff):
            self._start(landmarks)
        centroid, rotation, scale = fit_rigid(self._reference, landmarks[list(STABLE_LANDMARKS)])
        expression = (landmarks - centroid) @ rotation / scale
        pose = np.concatenate([centroid, self._radius * Rotation.from_matrix(rotation).as_rotvec(),
                               [self._radius * math.log(scale)]])  # fmt: skip
        pose = self._pose(pose, timestamp_s)
        expression = self._expression(expression, timestamp_s)
        rotation = Rotation.from_rotvec(pose[3:6] / self._radius).as_matrix()
        return math.exp(pose[6] / self._radius) * expression @ rotation.T + pose[:3]

    def _start(self, landmarks: np.ndarray) -> None:
        """Take ``landmarks`` as the reference head and size the per-landmark parameters."""
        stable = landmarks[list(STABLE_LANDMARKS)]
        self._reference = stable - stable.mean(axis=0)
        self._radius = math.sqrt((self._reference**2).sum(axis=1).mean())
        self._pose.reset()
        groups = landmark_groups(len(landmarks))
        for attribute in ("min_cutoff", "beta", "d_cutoff"):
            values = np.zeros((len(landmarks), 1))
            for name, indices in groups.items():
                values[indices] = getattr(self._config.group(name), attribute)
            setattr(self._expression, attribute, values)
        self._base_min_cutoff = self._expression.min_cutoff.copy()
        self._expression.min_cutoff = self._base_min_cutoff * self._scale
        self._expression.reset()


def landmark_groups(count: int) -> dict[str, np.ndarray]:
    """Indices of each expression group among ``count`` landmarks (468 without irises, 478)."""
    groups = {name: np.array([i for i in indices if i < count], dtype=int) for name, indices in EXPRESSION_GROUPS.items()}
    grouped = np.concatenate(list(groups.values()))
    groups["rest"] = np.setdiff1d(np.arange(count), grouped)
    return groups
