"""Which face the tracker follows, on synthetic landmark sets (the sample video is in test_tracker.py)."""

from __future__ import annotations

import numpy as np

from core.tracking.follow import FOLLOW_RADIUS, SWITCH_AFTER_S, FaceFollower

DT = 1.0 / 30.0  # frame interval, seconds


def face(centre_x: float, centre_y: float, size: float) -> np.ndarray:
    """[25, 3] landmarks on a grid filling a ``size`` square centred at (centre_x, centre_y)."""
    grid = np.linspace(-size / 2.0, size / 2.0, 5)
    x, y = np.meshgrid(grid + centre_x, grid + centre_y)
    return np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1).astype(np.float32)


def centre_x(landmarks: np.ndarray | None) -> float | None:
    return None if landmarks is None else float((landmarks[:, 0].min() + landmarks[:, 0].max()) / 2.0)


def test_the_largest_face_starts_and_the_nearest_is_kept_however_large_the_other():
    follower = FaceFollower()
    first = follower.follow([face(400, 100, 60), face(100, 100, 80)], 0.0)
    assert centre_x(first.landmarks) == 100 and not first.switched
    np.testing.assert_allclose(first.others, [[370, 70, 430, 130]])  # the face not followed
    for step in range(1, 30):  # the other face grows to three times the size; the followed one drifts
        other, followed = face(400, 100, 60 + 6 * step), face(100 + step, 100, 80)
        following = follower.follow([other, followed], step * DT)
        assert centre_x(following.landmarks) == 100 + step and not following.switched
        assert len(following.others) == 1


def test_a_lost_face_is_waited_for_then_the_largest_other_is_followed():
    follower = FaceFollower()
    follower.follow([face(100, 100, 80)], 0.0)
    small, large = face(300, 100, 50), face(500, 100, 70)
    picks = [follower.follow([small, large], step * DT) for step in range(1, 61)]
    lost_s = np.array([step * DT - DT for step in range(1, 61)])  # lost since the first of these frames
    waiting = lost_s < SWITCH_AFTER_S
    assert waiting.sum() in (30, 31)  # one second of frames
    assert all(pick.landmarks is None and len(pick.others) == 2 for pick, wait in zip(picks, waiting) if wait)
    switch = int(np.argmin(waiting))
    assert centre_x(picks[switch].landmarks) == 500 and picks[switch].switched
    assert all(centre_x(pick.landmarks) == 500 and not pick.switched for pick in picks[switch + 1 :])


def test_a_face_back_within_reach_before_the_switch_is_followed_on():
    follower = FaceFollower()
    follower.follow([face(100, 100, 80)], 0.0)
    other = face(400, 100, 120)
    for step in range(1, 25):  # 0.8 s without the followed face
        assert follower.follow([other], step * DT).landmarks is None
    returned_x = 100 + 0.9 * FOLLOW_RADIUS * 80
    back = follower.follow([other, face(returned_x, 100, 80)], 25 * DT)
    assert centre_x(back.landmarks) == returned_x and not back.switched
    for step in range(26, 50):  # lost again: the lost time starts over
        assert follower.follow([other], step * DT).landmarks is None


def test_a_face_beyond_the_radius_is_not_the_followed_one():
    follower = FaceFollower()
    follower.follow([face(100, 100, 80)], 0.0)
    assert follower.follow([face(100 + 1.1 * FOLLOW_RADIUS * 80, 100, 80)], DT).landmarks is None


def test_time_running_backwards_restarts_the_lost_time():
    follower = FaceFollower()
    follower.follow([face(100, 100, 80)], 5.0)
    other = face(400, 100, 80)
    assert follower.follow([other], 5.5).landmarks is None
    assert follower.follow([other], 0.0).landmarks is None  # a video looped
    assert follower.follow([other], 0.5).landmarks is None  # not 1 s since 5.5 nor since 0.0
    assert follower.follow([other], SWITCH_AFTER_S).switched


def test_reset_follows_the_largest_face_again_without_a_switch():
    follower = FaceFollower()
    follower.follow([face(100, 100, 80), face(400, 100, 40)], 0.0)
    follower.reset()
    following = follower.follow([face(100, 100, 80), face(400, 100, 120)], DT)
    assert centre_x(following.landmarks) == 400 and not following.switched


def test_no_face_is_no_pick():
    following = FaceFollower().follow([], 0.0)
    assert following.landmarks is None and following.others.shape == (0, 4)
