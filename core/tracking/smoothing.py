"""One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) for time-stamped arrays.

Each element is filtered on its own: a low-pass filter whose cutoff rises with the
element's (low-passed) speed, ``cutoff = min_cutoff + beta * |speed|``. Slow signals are
smoothed hard (less jitter), fast ones lightly (less lag). Speeds are in the signal's
units per second, so ``beta`` depends on those units (pixels for landmarks).
"""

from __future__ import annotations

import math

import numpy as np

from core.config import SmoothingConfig


class OneEuroFilter:
    """Array-valued One-Euro filter; its parameters may be changed between calls.

    Attributes:
        min_cutoff: cutoff frequency at zero speed, Hz (lower: smoother and laggier).
        beta: cutoff increase per unit of speed (higher: less lag on fast motion).
        d_cutoff: cutoff frequency of the speed estimate, Hz.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    @classmethod
    def from_config(cls, config: SmoothingConfig) -> OneEuroFilter:
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
