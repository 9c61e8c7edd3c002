"""Driving an avatar from tracked frames: landmarks in, a :class:`DrivingState` out.

Per frame (landmarks in the driving crop's pixels, MediaPipe's depth in the same scale):

1. Canonicalise: the similarity (scale, rotation, translation) that best maps the
   frame's rigid landmarks (nose, eye corners, the face's sides at the temples: points
   expressions barely move) onto the reference's removes the head's motion; what is
   left of the other landmarks' motion is expression.
2. The reference is the driver's neutral: the first :data:`REFERENCE_FRAMES` tracked
   frames, aligned and averaged; :meth:`Animator.recenter` starts a new one (e.g. when
   the driver has settled in front of the webcam).
3. Transfer: a second similarity maps the reference's stable landmarks onto the
   avatar's (its source photo's, in head space). Expression offsets go through it, so
   they are rotated into head space and scaled to the source face. The iris landmarks
   are among them: the avatar's eyes follow the driver's irises.
4. Head motion: the frame's rotation relative to the reference, carried into head space
   by the same similarity, turns the head about the rig's pivot (rotations within
   :data:`ROTATION_DEAD_ZONE_DEG` are not followed, or only in part); a translation
   across the image puts the rigid landmarks' centre where the frame has it (the pivot
   keeps its depth: a head turning about its neck does not move in depth), and the face's
   change of size beyond :data:`DEPTH_DEAD_ZONE` becomes a move in depth. The body
   (shoulders, the neck's base) follows that translation across the image beyond a slack
   (:meth:`Animator._body`): nodding moves only the head, stepping sideways the whole bust.

5. FLAME (avatars with a FLAME rig, when a FLAME file is at hand: :func:`attach_flame`):
   the tracked frame's FLAME fit (the tracking step after the face mesh, set up by
   :mod:`core.driving`) gives the expression, jaw, eyes and eyelids of the state's FLAME
   part; head motion still comes from step 4. Until the fitting has calibrated, and
   without a FLAME file, the FLAME part is None and the avatar keeps its source expression.

Only positions change: the state poses the avatar's control mesh (:meth:`HeadRig.posed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from core.avatar.avatar import Avatar, DrivingState
from core.avatar.flame_rig import AttachedFlame, FlamePose
from core.avatar.training_free.face_topology import CHEEK_EXTREMES
from core.avatar.training_free.rings import smoothstep
from core.config import Config
from core.tracking.head_pose import RIGID_LANDMARKS
from core.tracking.tracker import TrackedFrame

#: Tracked frames averaged into the driver's neutral reference.
REFERENCE_FRAMES = 3
#: Changes of the face's size below this share are not moves in depth: nodding, turning and
#: expressions change the landmark fit's scale by up to 3-5 % while the head stays (on the
#: sample clips, following them costs 0.35 dB); leaning in or out changes it by more.
DEPTH_DEAD_ZONE = 0.05
#: Head rotations below the first angle (degrees) are not followed, those above the second
#: in full, with a smooth ramp between. Expressions bend MediaPipe's whole mesh: a wink, a
#: sneer or a frown on a still head reads as 1-4 degrees of turn or tilt, and turning the
#: avatar's head by that swings its crown and hair by several pixels (on a sample clip of a
#: still head making faces, following those turns costs 4.7 dB).
ROTATION_DEAD_ZONE_DEG = (1.0, 3.0)
#: (gain, (from, to) degrees): MediaPipe's landmarks move less than the head when it nods.
#: Rendered avatars nodded by known angles of 5-20 degrees read as 0.5-0.85 of them (0.72
#: over five faces; turns 0.9, tilts 0.97), so a nod the fit measures beyond the second
#: angle is scaled by the gain, one within the first (mostly expression) is left as is.
PITCH_GAIN = (1.4, (3.0, 8.0))
#: How far the head moves across the image before the body follows, in face widths.
NECK_SLACK = 0.1


#: Upper and lower eyelid landmarks facing each other, corner to corner, per eye (the
#: subject's right eye first); the middle pair measures the eye's openness.
EYELID_PAIRS = (
    ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155)),
    ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382)),
)
#: A closed eye's lid gap in MediaPipe's landmarks, as a share of the open eye's.
CLOSED_EYE_OPENNESS = 0.2
#: The widest an avatar's eye opens, in its neutral lid gaps (a reference taken mid-blink
#: would otherwise make every later frame's eyes open without bound).
MAX_EYE_OPENNESS = 1.6


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * rotation @ x + translation`` on [N, 3] row vectors."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def inverse(self) -> Similarity:
        rotation = self.rotation.T
        return Similarity(1.0 / self.scale, rotation, -(rotation @ self.translation) / self.scale)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The least-squares similarity mapping ``source`` [N, 3] onto ``target`` [N, 3]
    (Umeyama 1991; a proper rotation, never a reflection)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(3)
    sign[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((singular * sign).sum() / source_centred.var(axis=0).sum())
    return Similarity(scale, rotation, target_mean - scale * rotation @ source_mean)


class Animator:
    """Turns one driver's tracked frames into driving states for one avatar.

    Frames must come in order from one tracker. A frame without a face repeats the last
    state (neutral before the first face); a frame without a FLAME fit keeps the last
    state's FLAME part.
    """

    def __init__(self, avatar: Avatar, reference_frames: int = REFERENCE_FRAMES):
        self._avatar_landmarks = avatar.rig.landmarks.astype(np.float64)
        self._pivot = avatar.rig.pivot.astype(np.float64)
        self._view_axis = avatar.source_camera.R[2]  # the source camera's forward axis, head space
        self._face_width = float(np.linalg.norm(np.subtract(*self._avatar_landmarks[list(CHEEK_EXTREMES)])))
        self._pivot_depth = float(avatar.source_camera.world_to_camera(self._pivot)[2])
        self._wanted = max(1, reference_frames)
        self._rigid = list(RIGID_LANDMARKS)
        self._last = DrivingState.neutral(len(self._avatar_landmarks))
        self.recenter()

    def recenter(self) -> None:
        """Take the next tracked frames as the driver's new neutral reference."""
        self._collected: list[np.ndarray] = []
        self._reference: np.ndarray | None = None
        self._to_avatar: Similarity | None = None

    @property
    def reference_complete(self) -> bool:
        """Whether the neutral reference has all its frames."""
        return len(self._collected) >= self._wanted

    def drive(self, frame: TrackedFrame) -> DrivingState:
        """The avatar's state for one tracked frame."""
        if frame.landmarks is None:
            return self._last
        landmarks = frame.landmarks.astype(np.float64)
        if not self.reference_complete:
            self._add_to_reference(landmarks)
        to_reference = fit_similarity(landmarks[self._rigid], self._reference[self._rigid])
        canonical = to_reference(landmarks)
        expression = canonical - self._reference  # driver's reference space
        to_avatar = self._to_avatar
        offsets = to_avatar.scale * expression @ to_avatar.rotation.T
        offsets = self._eyelids(offsets, canonical)
        rotation = to_avatar.rotation @ _followed_turn(to_reference.rotation.T) @ to_avatar.rotation.T
        # The head turns about the pivot, and moves across the image so that its rigid
        # landmarks' centre lands where the frame's is (MediaPipe's depths are relative to
        # the face). Pinning that centre in depth too would push a nodding head 2-3 cm back
        # or forth, off the frame's outline; depth comes from the face's size alone.
        reference_centre = self._reference[self._rigid].mean(axis=0)
        across = (landmarks[self._rigid].mean(axis=0) - reference_centre) * (1.0, 1.0, 0.0)
        moved = to_avatar.scale * to_avatar.rotation @ across
        centre = to_avatar(reference_centre[None])[0]  # in head space
        translation = centre + moved - self._pivot - rotation @ (centre - self._pivot)
        depth = self._pivot_depth * _beyond(to_reference.scale - 1.0, DEPTH_DEAD_ZONE)
        translation += self._view_axis * (depth - translation @ self._view_axis)
        flame = self._last.flame if frame.flame is None else FlamePose.from_fit(frame.flame)
        self._last = DrivingState(offsets, rotation, translation, flame, body_translation=self._body(translation))
        return self._last

    def _eyelids(self, offsets: np.ndarray, canonical: np.ndarray) -> np.ndarray:
        """``offsets`` [L, 3] with each eye's lid gap set from the driver's eye openness.

        MediaPipe's lids do not meet on a closed eye (the gap stays about
        :data:`CLOSED_EYE_OPENNESS` of the open one) and a transferred offset only narrows the
        avatar's gap by as much: a blink left the avatar's eye half open. Per eye, the driver's
        openness (centre lid gap now over in the reference) is mapped so that closed reads 0,
        and every upper/lower lid pair of the avatar is set to its neutral gap times that,
        about the pair's transferred midpoint.
        """
        offsets = offsets.copy()
        avatar = self._avatar_landmarks
        for pairs in EYELID_PAIRS:
            centre = pairs[len(pairs) // 2]
            openness = _gap(canonical, centre) / max(_gap(self._reference, centre), 1e-9)
            shown = min(max(openness - CLOSED_EYE_OPENNESS, 0.0) / (1.0 - CLOSED_EYE_OPENNESS), MAX_EYE_OPENNESS)
            for upper, lower in pairs:
                posed_upper, posed_lower = avatar[upper] + offsets[upper], avatar[lower] + offsets[lower]
                middle, half_gap = (posed_upper + posed_lower) / 2.0, shown * (avatar[upper] - avatar[lower]) / 2.0
                offsets[upper], offsets[lower] = middle + half_gap - avatar[upper], middle - half_gap - avatar[lower]
        return offsets

    def _body(self, translation: np.ndarray) -> np.ndarray:
        """[3] the body's translation for the head's ``translation`` [3] (head space).

        The pivot also moves when the driver nods or tilts about a lower point of the neck
        (10-25 px in a talking-head clip whose shoulders stay), so the body is on a leash: the
        head moves up to :data:`NECK_SLACK` face widths across the image on its own, and
        beyond that drags the body along (someone stepping or dancing across the frame).
        Depth is left to the head: the face's size also changes with pitch and expression.
        """
        across = translation - self._view_axis * (translation @ self._view_axis)
        distance, slack = float(np.linalg.norm(across)), NECK_SLACK * self._face_width
        return across * (max(distance - slack, 0.0) / distance) if distance > 0.0 else across

    def _add_to_reference(self, landmarks: np.ndarray) -> None:
        """Average ``landmarks`` [L, 3], aligned to the first reference frame, into the reference."""
        if self._collected:
            landmarks = fit_similarity(landmarks[self._rigid], self._collected[0][self._rigid])(landmarks)
        self._collected.append(landmarks)
        self._reference = np.mean(self._collected, axis=0)
        self._to_avatar = fit_similarity(self._reference[self._rigid], self._avatar_landmarks[self._rigid])


def _followed_turn(rotation: np.ndarray) -> np.ndarray:
    """[3, 3] what driving follows of the driver's ``rotation`` [3, 3] (crop axes): none of
    it within :data:`ROTATION_DEAD_ZONE_DEG`, nods beyond :data:`PITCH_GAIN` scaled up."""
    turn = Rotation.from_matrix(rotation).as_rotvec()  # about the crop's axes: x pitch, y yaw, z roll
    angle = math.degrees(float(np.linalg.norm(turn)))
    low, high = ROTATION_DEAD_ZONE_DEG
    turn = turn * smoothstep((angle - low) / (high - low))
    gain, (low, high) = PITCH_GAIN
    turn[0] *= 1.0 + (gain - 1.0) * smoothstep((abs(math.degrees(turn[0])) - low) / (high - low))
    return Rotation.from_rotvec(turn).as_matrix()


def _beyond(value: float, dead_zone: float) -> float:
    """``value`` moved toward zero by ``dead_zone`` (zero within it)."""
    return float(np.sign(value) * max(abs(value) - dead_zone, 0.0))


def _gap(landmarks: np.ndarray, pair: tuple[int, int]) -> float:
    """Distance between the two landmarks of ``pair`` in ``landmarks`` [L, 3]."""
    return float(np.linalg.norm(landmarks[pair[0]] - landmarks[pair[1]]))


def attach_flame(avatar: Avatar, flame_file: Path | None, config: Config) -> Avatar:
    """``avatar`` able to pose FLAME expressions: its FLAME rig with the model of
    ``flame_file`` attached (:meth:`AttachedFlame.load`). Unchanged for an avatar without a
    FLAME rig, one that has its model already, or without a file."""
    if avatar.flame is None or avatar.flame.model is not None or flame_file is None:
        return avatar
    return avatar.with_flame(AttachedFlame.load(flame_file, config))

