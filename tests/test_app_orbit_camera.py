"""The viewer's orbit camera: gestures move the view as a person expects."""

import numpy as np
import pytest

from app.orbit_camera import PRESETS, ZOOM_RANGE, OrbitCamera, OrbitHome

HOME = OrbitHome(target=(0.0, 0.1, -0.3), yaw=2.0, pitch=-3.0, distance=9.0, focal_normalized=12.0)
SIZE = 512


def centre_pixel(camera, point):
    uv, depth = camera.camera(SIZE, SIZE).project(np.asarray(point, float))
    assert depth > 0
    return uv


def test_home_view_looks_at_the_target_from_the_home_distance():
    camera = OrbitCamera(HOME)
    view = camera.camera(SIZE, SIZE)
    np.testing.assert_allclose(centre_pixel(camera, HOME.target), [SIZE / 2, SIZE / 2], atol=1e-6)
    assert np.linalg.norm(view.center - HOME.target) == pytest.approx(HOME.distance)


def test_dragging_right_turns_the_camera_to_the_subjects_right():
    camera = OrbitCamera(HOME)
    camera.orbit(100, 0)
    assert camera.yaw < HOME.yaw  # the camera moved towards -x, the subject's right
    assert camera.camera(SIZE, SIZE).center[0] < OrbitCamera(HOME).camera(SIZE, SIZE).center[0]
    np.testing.assert_allclose(centre_pixel(camera, HOME.target), [SIZE / 2, SIZE / 2], atol=1e-6)


def test_dragging_down_looks_from_above_and_pitch_is_limited():
    camera = OrbitCamera(HOME)
    camera.orbit(0, 50)
    assert camera.camera(SIZE, SIZE).center[1] > OrbitCamera(HOME).camera(SIZE, SIZE).center[1]
    camera.orbit(0, 10_000)
    assert camera.pitch <= 80.0


def test_pan_moves_the_scene_with_the_mouse():
    camera = OrbitCamera(HOME)
    before = centre_pixel(camera, HOME.target)
    camera.pan(40, -25, SIZE)
    after = centre_pixel(camera, HOME.target)
    np.testing.assert_allclose(after - before, [40, -25], atol=0.5)


def test_zoom_moves_closer_within_limits_and_reset_returns_home():
    camera = OrbitCamera(HOME)
    camera.zoom(3)
    assert camera.distance < HOME.distance
    camera.zoom(-1000)
    assert camera.distance == pytest.approx(ZOOM_RANGE[1] * HOME.distance)
    camera.orbit(30, 30)
    camera.pan(10, 10, SIZE)
    camera.reset()
    assert camera.state() == OrbitCamera(HOME).state()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_relative_to_the_home_view(name):
    camera = OrbitCamera(HOME)
    camera.preset(name)
    assert (camera.yaw - HOME.yaw, camera.pitch - HOME.pitch) == PRESETS[name]


def test_state_changes_with_every_gesture():
    camera = OrbitCamera(HOME)
    states = {camera.state()}
    for gesture in (lambda: camera.orbit(5, 0), lambda: camera.pan(3, 0, SIZE), lambda: camera.zoom(1)):
        gesture()
        states.add(camera.state())
    assert len(states) == 4
