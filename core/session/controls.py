"""Manual controls and the idle animation, as driving states of an avatar.

The animation core drives an avatar with landmark offsets from a tracked face (see
:mod:`core.avatar.animation`); without a face, these controls make the offsets: each
control is a displacement field over the avatar's 478 neutral landmarks (in head space,
scaled to its face), and a state is their weighted sum plus a head rotation.

* jaw_open: the lower lip, chin and lower face drop and move back a little;
* smile: the mouth corners move out and up, their neighbours follow;
* brows_up: the eyebrows rise, the forehead just above them follows;
* eyes_closed: each upper eyelid moves onto its lower one;
* yaw, pitch, roll (degrees): the head turns about its pivot (as in
  :meth:`core.tracking.head_pose.HeadPose.yaw_pitch_roll_deg`).

An avatar with a FLAME rig (the network's) takes its expression from FLAME instead of the
landmark offsets: there jaw_open turns FLAME's jaw and eyes_closed closes FLAME's eyelids,
from the source photo's articulation. smile and brows_up have no counterpart among FLAME's
controls (its expression components are a statistical basis without names), so they move
only landmark-rigged avatars.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from core.avatar import DrivingState
from core.avatar.flame_rig import FlamePose
from core.avatar.training_free.rings import smoothstep

#: Manual controls: name -> (label, minimum, maximum). Angles in degrees, the rest 0..1.
MANUAL_CONTROLS = {
    "jaw_open": ("Jaw open", 0.0, 1.0),
    "smile": ("Smile", 0.0, 1.0),
    "brows_up": ("Brows up", 0.0, 1.0),
    "eyes_closed": ("Eyes closed", 0.0, 1.0),
    "yaw": ("Head yaw", -40.0, 40.0),
    "pitch": ("Head pitch", -30.0, 30.0),
    "roll": ("Head roll", -30.0, 30.0),
}
EXPRESSIONS = ("jaw_open", "smile", "brows_up", "eyes_closed")

# MediaPipe face-mesh landmarks (subject's right / left).
OUTER_EYE_CORNERS = (33, 263)
MOUTH_CORNERS = (61, 291)
INNER_MOUTH_CORNERS = (78, 308)
CHIN = 152
LOWER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324, 146, 91, 181, 84, 17, 314, 405, 321, 375)
EYEBROWS = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
#: (upper eyelid, lower eyelid) pairs, subject's right eye then left eye.
EYELID_PAIRS = (
    (246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155),
    (466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382),
)  # fmt: skip
#: Iris landmarks (right centre and ring, left centre and ring) drop with the lids a little.
IRISES = tuple(range(468, 478))

# Sizes of the motions, in outer-eye-corner distances (about 9 cm on an adult).
JAW_DROP = 0.28
JAW_BACK = 0.08
SMILE_OUT = 0.12
SMILE_UP = 0.08
SMILE_REACH = 0.35
BROW_RISE = 0.09
BROW_REACH = 0.25
LID_CLOSURE = 0.95
IRIS_DROP = 0.35
#: FLAME jaw rotation (radians, about +x: the mouth opens) at jaw_open = 1.
FLAME_JAW_OPEN_RAD = 0.35


class ControlRig:
    """Displacement fields of the expression controls for one avatar's landmarks, and for a
    FLAME-rigged avatar its ``flame_source`` articulation, which the controls start from."""

    def __init__(self, landmarks: np.ndarray, flame_source: FlamePose | None = None):
        self.flame_source = flame_source
        points = np.asarray(landmarks, dtype=np.float64)
        self.num_landmarks = len(points)
        eye_distance = float(np.linalg.norm(points[OUTER_EYE_CORNERS[1]] - points[OUTER_EYE_CORNERS[0]]))
        self.fields = {
            "jaw_open": _jaw_field(points, eye_distance),
            "smile": _smile_field(points, eye_distance),
            "brows_up": _brow_field(points, eye_distance),
            "eyes_closed": _eyelid_field(points),
        }

    def state(self, controls: dict[str, float]) -> DrivingState:
        """The driving state for ``controls`` (missing names count as 0)."""
        offsets = np.zeros((self.num_landmarks, 3))
        for name in EXPRESSIONS:
            offsets += controls.get(name, 0.0) * self.fields[name]
        rotation = Rotation.from_euler(
            "YXZ", [controls.get("yaw", 0.0), controls.get("pitch", 0.0), controls.get("roll", 0.0)], degrees=True
        ).as_matrix()
        return DrivingState(offsets, rotation, np.zeros(3), flame=self._flame(controls))

    def _flame(self, controls: dict[str, float]) -> FlamePose | None:
        """The FLAME articulation for ``controls``: the source's, jaw turned, eyelids closed."""
        source = self.flame_source
        if source is None:
            return None
        jaw = source.jaw + np.array([FLAME_JAW_OPEN_RAD * controls.get("jaw_open", 0.0), 0.0, 0.0])
        eyelids = np.clip(source.eyelids + controls.get("eyes_closed", 0.0), 0.0, 1.0)
        return FlamePose(source.expression, jaw, source.eyes, eyelids)


def _jaw_field(points: np.ndarray, eye_distance: float) -> np.ndarray:
    mouth_y = points[list(MOUTH_CORNERS), 1].mean()
    mouth_x = points[list(MOUTH_CORNERS), 0].mean()
    below = np.clip((mouth_y - points[:, 1]) / (0.15 * (mouth_y - points[CHIN, 1])), 0.0, 1.0)
    half_width = 0.5 * eye_distance * 1.6
    sideways = 1.0 - np.clip((np.abs(points[:, 0] - mouth_x) - 0.6 * half_width) / (0.6 * half_width), 0.0, 1.0)
    weight = smoothstep(below) * smoothstep(sideways)
    weight[list(LOWER_LIP)] = 1.0
    weight[list(MOUTH_CORNERS + INNER_MOUTH_CORNERS)] = 0.5
    weight[IRISES[0]:] = 0.0
    return weight[:, None] * np.array([0.0, -JAW_DROP, -JAW_BACK]) * eye_distance


def _smile_field(points: np.ndarray, eye_distance: float) -> np.ndarray:
    field = np.zeros_like(points)
    for corner, side in zip(MOUTH_CORNERS, (-1.0, 1.0)):  # the subject's right is -x
        weight = _falloff(points, points[corner], SMILE_REACH * eye_distance)
        field += weight[:, None] * np.array([side * SMILE_OUT, SMILE_UP, 0.0]) * eye_distance
    field[IRISES[0]:] = 0.0
    return field


def _brow_field(points: np.ndarray, eye_distance: float) -> np.ndarray:
    eye_y = points[list(OUTER_EYE_CORNERS), 1].mean()
    brows = points[list(EYEBROWS)]
    nearest = np.min(np.linalg.norm(points[:, None, :] - brows[None], axis=2), axis=1)
    weight = smoothstep(1.0 - nearest / (BROW_REACH * eye_distance)) * (points[:, 1] > eye_y + 0.05 * eye_distance)
    weight[IRISES[0]:] = 0.0
    return weight[:, None] * np.array([0.0, BROW_RISE, 0.0]) * eye_distance


def _eyelid_field(points: np.ndarray) -> np.ndarray:
    field = np.zeros_like(points)
    for upper, lower in EYELID_PAIRS:
        field[upper] = LID_CLOSURE * (points[lower] - points[upper])
    gaps = [points[lower, 1] - points[upper, 1] for upper, lower in ((159, 145), (386, 374))]
    field[IRISES[:5], 1] = IRIS_DROP * gaps[0]
    field[IRISES[5:], 1] = IRIS_DROP * gaps[1]
    return field


def _falloff(points: np.ndarray, centre: np.ndarray, reach: float) -> np.ndarray:
    """1 at ``centre``, smoothly 0 at ``reach`` and beyond."""
    return smoothstep(1.0 - np.linalg.norm(points - centre, axis=1) / reach)


#: Seconds between blinks of the idle animation, and how long one lasts.
IDLE_BLINK_PERIOD_S = 4.2
IDLE_BLINK_S = 0.2


def idle_controls(t: float) -> dict[str, float]:
    """The idle animation at ``t`` seconds: a slow look around, breathing, a blink now and then.

    Periods that share no common multiple keep it from looking mechanical; the values stay
    small so that any avatar looks natural doing it.
    """

    def wave(period: float, phase: float = 0.0) -> float:
        return math.sin(2.0 * math.pi * t / period + phase)

    blink = (t % IDLE_BLINK_PERIOD_S) / IDLE_BLINK_S
    return {
        "jaw_open": 0.04 + 0.04 * wave(3.1),
        "smile": 0.3 + 0.2 * wave(9.0, 1.0),
        "brows_up": 0.15 + 0.15 * wave(6.3, 2.0),
        "eyes_closed": math.sin(math.pi * blink) if blink < 1.0 else 0.0,
        "yaw": 14.0 * wave(7.0),
        "pitch": 4.0 * wave(5.3, 0.7),
        "roll": 3.0 * wave(8.9, 1.9),
    }
