"""How a landmark filter trades lag, amplitude and jitter, measured against the raw landmarks.

Landmarks [T, N, 3] (pixels, one frame per row, consecutive frames) become per-channel
signals [T, C] in pixels (:func:`channel_signals`):

* ``pose``: the rigid motion of :data:`~core.tracking.head_pose.STABLE_LANDMARKS` against
  the first frame: centroid x, y and rotation vector times the points' radius (arc px);
* ``eyelids``: lid gaps 159-145 (right eye) and 386-374 (left eye);
* ``lips``: inner lip gap 13-14 and mouth width 61-291;
* ``irises``: iris centres 468 and 473 relative to the middle of their eye corners (x, y);
* ``rest``: x and y of every landmark in none of the groups.

Per channel (:func:`measure_channel`), filtered against raw:

* ``lag_frames``: the delay of the filtered velocities behind the raw ones, the peak of
  their cross-correlation (refined to a fraction of a frame by a parabola); products of
  velocities weigh fast motion most, where lag shows;
* ``amplitude_kept``: on the raw signal's largest excursions from its running median
  (blinks, mouth openings), the filtered excursion over the raw one (1: kept in full);
  None when the clip has none;
* ``jitter_ratio``: RMS of the filtered signal's high-passed part over the raw one's, on
  the channel's stillest frames (:data:`STILL_QUANTILE`); 0.5 is jitter halved;
* ``fast_error_px``: RMS of filtered minus raw on the fastest frames (:data:`FAST_QUANTILE`:
  what lag costs in pixels, the unit of the keypoint distance AKD).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d
from scipy.spatial.transform import Rotation

from core.tracking.head_pose import STABLE_LANDMARKS
from core.tracking.smoothing import fit_rigid, landmark_groups

#: Frames whose channel speed reaches this quantile are "fast".
FAST_QUANTILE = 0.8
#: Frames whose locally averaged channel speed is below this quantile are "still".
STILL_QUANTILE = 0.3
#: Largest lag searched, frames.
MAX_LAG_FRAMES = 8
#: Window of the running median that excursions are measured from, frames (~1 s at 30 fps).
BASELINE_FRAMES = 31
#: An excursion counts when it reaches this fraction of the signal's largest one ...
EVENT_FRACTION = 0.5
#: ... and this many times the signal's frame-to-frame noise.
EVENT_NOISE_FACTOR = 8.0


def channel_signals(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel signals [T, C] (pixels) of landmarks [T, N, 3] (see the module docstring)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    signals = {"pose": _pose_signal(landmarks)}
    signals["eyelids"] = _distances(landmarks, ((159, 145), (386, 374)))
    signals["lips"] = _distances(landmarks, ((13, 14), (61, 291)))
    if landmarks.shape[1] > 473:
        centres = [landmarks[:, iris, :2] - landmarks[:, corners, :2].mean(axis=1)
                   for iris, corners in ((468, [33, 133]), (473, [362, 263]))]  # fmt: skip
        signals["irises"] = np.concatenate(centres, axis=1)
    signals["rest"] = landmarks[:, landmark_groups(landmarks.shape[1])["rest"], :2].reshape(len(landmarks), -1)
    return signals


def measure(raw: np.ndarray, filtered: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """:func:`measure_channel` of every channel of landmarks ``raw`` and ``filtered`` [T, N, 3]."""
    raw_signals, filtered_signals = channel_signals(raw), channel_signals(filtered)
    return {name: measure_channel(raw_signals[name], filtered_signals[name]) for name in raw_signals}


def measure_channel(raw: np.ndarray, filtered: np.ndarray) -> dict[str, float | int | None]:
    """Lag (frames), amplitude kept (fraction, None without excursions), jitter ratio, the
    number of excursions and the error on fast frames (pixels) of one channel's signals
    ``raw`` and ``filtered`` [T, C]."""
    kept, events = amplitude_kept(raw, filtered)
    return {
        "lag_frames": lag_frames(raw, filtered),
        "amplitude_kept": kept,
        "jitter_ratio": jitter_ratio(raw, filtered),
        "events": events,
        "fast_error_px": fast_error(raw, filtered),
    }


def lag_frames(raw: np.ndarray, filtered: np.ndarray, max_lag: int = MAX_LAG_FRAMES) -> float:
    """Frames by which ``filtered`` [T, C] follows ``raw`` [T, C].

    The cross-correlation of the velocities, summed over the C signals, peaks at the lag
    (for a pure delay it is the velocities' autocorrelation shifted by it); a parabola
    through the peak and its neighbours gives the fraction of a frame.
    """
    raw_velocity, filtered_velocity = np.diff(raw, axis=0), np.diff(filtered, axis=0)
    lags = np.arange(-max_lag, max_lag + 1)
    correlation = np.array([_shifted_product(raw_velocity, filtered_velocity, lag) for lag in lags])
    peak = int(np.argmax(correlation))
    if 0 < peak < len(lags) - 1:
        before, at, after = correlation[peak - 1 : peak + 2]
        curvature = before - 2.0 * at + after
        if curvature < 0.0:
            return float(lags[peak] + 0.5 * (before - after) / curvature)
    return float(lags[peak])


def amplitude_kept(raw: np.ndarray, filtered: np.ndarray) -> tuple[float | None, int]:
    """Mean fraction of the raw signal's large excursions that ``filtered`` keeps, and
    their number (see the module docstring); ``raw``, ``filtered``: [T, C].

    An excursion is a local extreme of the raw signal minus its running median; the
    filtered signal's largest same-signed deviation from that median within a frame
    before and three after (the filter's lag) is compared with it.
    """
    baseline = median_filter(raw, size=(BASELINE_FRAMES, 1), mode="nearest")
    raw_deviation, filtered_deviation = raw - baseline, filtered - baseline
    ratios = []
    for column in range(raw.shape[1]):
        deviation = raw_deviation[:, column]
        # Robust noise: the median absolute frame-to-frame change is 0.6745 sigma * sqrt(2)
        # for white noise, and barely moved by the few large excursions sought.
        noise = np.median(np.abs(np.diff(deviation))) / 0.6745 / np.sqrt(2.0)
        floor = max(EVENT_FRACTION * np.abs(deviation).max(), EVENT_NOISE_FACTOR * noise)
        for frame in _local_extremes(np.abs(deviation), floor):
            sign = np.sign(deviation[frame])
            window = filtered_deviation[max(frame - 1, 0) : frame + 4, column]
            ratios.append(float((sign * window).max() / abs(deviation[frame])))
    return (float(np.mean(ratios)) if ratios else None), len(ratios)


def fast_error(raw: np.ndarray, filtered: np.ndarray) -> float:
    """RMS over signals of ``filtered - raw`` ([T, C], pixels) on the channel's fastest frames."""
    fast = np.zeros(len(raw), dtype=bool)
    fast[1:] = _fast_frames(np.diff(raw, axis=0))
    return float(np.sqrt(((filtered[fast] - raw[fast]) ** 2).mean()))


def jitter_ratio(raw: np.ndarray, filtered: np.ndarray) -> float:
    """RMS of ``filtered``'s high-passed part over ``raw``'s on the stillest frames ([T, C]).

    High pass: a frame minus the mean of its neighbours (flat on constant and linear motion).
    """
    speed = np.linalg.norm(np.diff(raw, axis=0), axis=1)
    local_speed = uniform_filter1d(speed, size=9, mode="nearest")[:-1]  # per frame 1..T-2
    still = local_speed <= np.quantile(local_speed, STILL_QUANTILE)
    raw_high, filtered_high = _high_pass(raw)[still], _high_pass(filtered)[still]
    return float(np.sqrt((filtered_high**2).mean() / max((raw_high**2).mean(), 1e-12)))


def _pose_signal(landmarks: np.ndarray) -> np.ndarray:
    """[T, 5] centroid x, y and rotation vector times radius of the pose landmarks."""
    stable = landmarks[:, list(STABLE_LANDMARKS)]
    reference = stable[0] - stable[0].mean(axis=0)
    radius = np.sqrt((reference**2).sum(axis=1).mean())
    rows = []
    for points in stable:
        centroid, rotation, _ = fit_rigid(reference, points)
        rows.append(np.concatenate([centroid[:2], radius * Rotation.from_matrix(rotation).as_rotvec()]))
    return np.array(rows)


def _distances(landmarks: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """[T, P] 2D distances (pixels) between the landmark pairs."""
    return np.stack([np.linalg.norm(landmarks[:, a, :2] - landmarks[:, b, :2], axis=1) for a, b in pairs], axis=1)


def _fast_frames(velocity: np.ndarray) -> np.ndarray:
    """[T'] bool: the rows of ``velocity`` [T', C] whose norm reaches :data:`FAST_QUANTILE`."""
    speed = np.linalg.norm(velocity, axis=1)
    return speed >= np.quantile(speed, FAST_QUANTILE)


def _shifted_product(raw: np.ndarray, filtered: np.ndarray, lag: int) -> float:
    """Sum over frames t of raw[t] . filtered[t + lag] ([T', C]; pairs inside the series)."""
    if lag >= 0:
        return float((raw[: len(raw) - lag] * filtered[lag:]).sum())
    return float((raw[-lag:] * filtered[: len(filtered) + lag]).sum())


def _local_extremes(magnitude: np.ndarray, floor: float, spacing: int = 3) -> list[int]:
    """Frames where ``magnitude`` [T] exceeds ``floor`` and is the largest within ``spacing``."""
    peaks = []
    for frame in np.flatnonzero(magnitude > floor):
        window = magnitude[max(frame - spacing, 0) : frame + spacing + 1]
        if magnitude[frame] == window.max():
            peaks.append(int(frame))
    return peaks


def _high_pass(signal: np.ndarray) -> np.ndarray:
    """[T - 2, C]: each inner frame minus the mean of its two neighbours."""
    return signal[1:-1] - 0.5 * (signal[:-2] + signal[2:])

