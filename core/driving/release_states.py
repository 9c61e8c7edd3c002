"""Driving states from the frames of a release driver folder (:mod:`core.driving.release_driver`).

A frame holds FLAME codes and a camera ``[R | T]`` (focal 12) that sees the driver's head in
FLAME's frame (x5): the release renders its avatar through that camera, so the avatar appears
to the camera as the driver's head did. Two ways to show that here:

* head motion (``omg-avatar drive``'s default): the avatar's camera stays (its source view, or
  an orbit of it) and the head moves. The head's rigid motion ``x -> A x + b`` with
  ``A = R_s^T R_d`` and ``b = R_s^T (t_d - t_s)`` (OpenCV extrinsics of the source camera s
  and the frame's camera d) puts every rigid head point where the source camera sees it as the
  frame's camera sees the unmoved point: ``R_s (A x + b) + t_s = R_d x + t_d``. A
  :class:`~core.avatar.DrivingState` rotates about ``rig.pivot`` and then translates, so its
  translation is ``b + A p - p``. The pose is the driver's absolute one, as in the release
  (not relative to a reference frame): an avatar whose head space is FLAME's (the network's)
  takes the driver's pose exactly; a training-free avatar's head space is its own (origin
  between the eyes and the nose base), so it takes the driver's motion since the first frame
  instead (``first``), starting from its own pose.
* the release's framing (``drive --driver-camera``, ``eval``): no head motion; each frame is
  rendered through the frame's camera (:func:`release_camera`), so the whole bust turns with
  the head, as in the release's videos.

The expression part is the frame's ``expcode``, jaw (``posecode[3:6]``) and ``eyecode`` for an
avatar with a FLAME rig whose model is at hand (``expressions``); otherwise the avatar keeps its
source expression. Landmark offsets are zero (FLAME poses the expression).
"""

from __future__ import annotations

import numpy as np

from core.avatar import Avatar, DrivingState
from core.avatar.flame_rig import FlamePose
from core.driving.release_driver import DriverFrame
from core.geometry.camera import Camera
from core.geometry.release_camera import camera_from_release


def release_camera(frame: DriverFrame, size: int) -> Camera:
    """The frame's camera as an OpenCV camera of ``size`` x ``size`` pixels (the release's focal)."""
    return camera_from_release(frame.transform_matrix, size)


def release_state(
    frame: DriverFrame, avatar: Avatar, expressions: bool, head_motion: bool = True, first: DriverFrame | None = None
) -> DrivingState:
    """The avatar's state for ``frame`` (see the module docstring).

    Args:
        expressions: pose the frame's FLAME codes (the avatar has a FLAME rig and its model).
        head_motion: move the head as the frame's camera sees it from the avatar's source
            camera; False: no head motion (the frame's camera renders).
        first: the driver's first frame. An avatar whose head space is not FLAME's (a
            training-free one, without a FLAME rig) then moves its head as the driver's moved
            since that frame (:func:`anchored_camera`), the first frame showing the avatar's own
            pose; one whose head space is FLAME's (a network one) takes the driver's absolute
            pose, as the release does. None: the absolute pose for every avatar.
    """
    rotation, translation = np.eye(3), np.zeros(3)
    if head_motion:
        source = avatar.source_camera
        driver = release_camera(frame, source.width)
        if first is not None and avatar.flame is None:
            driver = anchored_camera(driver, release_camera(first, source.width), source)
        rotation, translation = rigid_head_motion(source, driver, avatar.rig.pivot)
    flame = flame_pose(frame) if expressions and avatar.flame is not None else None
    offsets = np.zeros((len(avatar.rig.landmarks), 3))
    return DrivingState(offsets, rotation, translation, flame, body_translation=translation)


def flame_pose(frame: DriverFrame) -> FlamePose:
    """The frame's expression, jaw (``posecode[3:6]``) and eyes; no eyelid codes."""
    return FlamePose(expression=frame.expcode, jaw=frame.posecode[3:6], eyes=frame.eyecode,
                     eyelids=np.zeros(0, np.float32))  # fmt: skip


def rigid_head_motion(source: Camera, driver: Camera, pivot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head motion that shows the head to ``source`` as ``driver`` sees it unmoved.

    Args:
        source, driver: cameras (world = head space).
        pivot: [3] the rotation centre of the driving state.

    Returns:
        rotation: [3, 3] ``A = R_s^T R_d``, about ``pivot``.
        translation: [3] ``b + A pivot - pivot`` with ``b = R_s^T (t_d - t_s)``.
    """
    rotation = source.R.T @ driver.R
    offset = source.R.T @ (driver.t - source.t)
    pivot = np.asarray(pivot, np.float64)
    return rotation, offset + rotation @ pivot - pivot


def anchored_camera(camera: Camera, first: Camera, source: Camera) -> Camera:
    """``camera`` (a frame's) carried into the avatar's head space by the rigid map that makes
    ``first`` (the driver's first frame's camera) coincide with ``source`` (the avatar's view of
    that frame): ``R = R_k R_0^T R_s``, ``t = R_k R_0^T (t_s - t_0) + t_k``, ``source``'s
    intrinsics. For an avatar reconstructed from the first frame, the first frame renders
    exactly through ``source``, and every later frame moves as the driver's camera moved."""
    relative = camera.R @ first.R.T
    return Camera(source.K, relative @ source.R, relative @ (source.t - first.t) + camera.t,
                  source.width, source.height)  # fmt: skip
