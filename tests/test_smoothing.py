"""One-Euro filter: passes constants, removes jitter, follows steps faster with a larger beta."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import load_config
from core.tracking.smoothing import OneEuroFilter

FPS = 30.0


def run(filter_: OneEuroFilter, signal: np.ndarray) -> np.ndarray:
    """Filter samples [T, ...] taken at FPS."""
    return np.stack([filter_(value, index / FPS) for index, value in enumerate(signal)])


def frames_to_reach(filtered: np.ndarray, level: float) -> int:
    return int(np.argmax(filtered >= level))


def test_constant_signal_passes_unchanged():
    signal = np.broadcast_to(np.array([[3.0, -7.5, 1e3]]), (50, 1, 3))
    filtered = run(OneEuroFilter.from_config(load_config("paper").tracking.smoothing), signal)
    np.testing.assert_allclose(filtered, signal, rtol=0, atol=1e-9)


def test_jitter_on_a_static_signal_is_reduced():
    rng = np.random.default_rng(0)
    truth = np.full((300, 478, 3), 200.0)
    noisy = truth + rng.normal(0.0, 1.0, truth.shape)
    filtered = run(OneEuroFilter(min_cutoff=1.5, beta=0.05, d_cutoff=1.0), noisy)
    settled = slice(30, None)
    assert filtered[settled].var(axis=0).mean() < 0.3 * noisy[settled].var(axis=0).mean()


def test_step_lag_decreases_as_beta_grows():
    step = np.concatenate([np.zeros(10), np.full(50, 100.0)])
    lags = [
        frames_to_reach(run(OneEuroFilter(min_cutoff=1.0, beta=beta, d_cutoff=1.0), step), 90.0) - 10
        for beta in (0.0, 0.01, 0.1)
    ]
    assert lags[0] > lags[1] > lags[2] >= 0


def test_reset_forgets_the_past_and_parameters_apply_on_the_next_call():
    smoother = OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0)
    smoother(np.zeros(2), 0.0)
    slow = smoother(np.ones(2), 1 / FPS)
    smoother.reset()
    np.testing.assert_array_equal(smoother(np.full(2, 5.0), 10.0), [5.0, 5.0])

    smoother.reset()
    smoother(np.zeros(2), 0.0)
    smoother.min_cutoff = 100.0
    fast = smoother(np.ones(2), 1 / FPS)
    assert np.all(fast > slow)


def test_repeated_timestamp_returns_the_previous_estimate_and_shapes_must_match():
    smoother = OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0)
    first = smoother(np.zeros(3), 1.0)
    np.testing.assert_array_equal(smoother(np.ones(3), 1.0), first)
    with pytest.raises(ValueError, match="reset first"):
        smoother(np.zeros(4), 2.0)
