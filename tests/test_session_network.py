"""The session with a network avatar (a tiny random-weight network, the synthetic FLAME as the
release's bundle): its refiner runs on the refiner worker, and a tracked driver folder in the
release's layout drives it (head motion and FLAME expressions); bad folders fail in one line."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
from driver_folders import write_driver_folder, write_hostile_folder
from framing import assert_framed_with_a_margin
from network_files import frontal_face_landmarks, write_network_files
from waiting import wait_for, wait_until

from core.avatar.view import View, render_view
from core.config import load_config
from core.errors import ModelFileError
from core.session import ReleaseFolderDriver, Session

pytestmark = pytest.mark.samples

CONFIG = load_config("tiny")
TIMEOUT_S = 60.0
#: Head turn of the driver folder's frames, degrees.
YAWS = [0.0, 5.0, 10.0, 15.0, 20.0, 15.0, 10.0, 5.0]


@pytest.fixture(scope="module")
def session(tmp_path_factory, samples_dir):
    files = write_network_files(tmp_path_factory.mktemp("models"), frontal_face_landmarks(samples_dir, CONFIG))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMG_AVATAR_MODELS", str(files.models))
        session = Session(CONFIG)
        for kind in ("checkpoint", "flame", "dinov2"):
            session.set_network_file(kind, getattr(files, kind))
        job = session.reconstruct(samples_dir / "photos" / "einstein.jpg", "network")
        assert job.wait(300) and job.error is None, job.error
        session.set_avatar(job.avatar, job.name)
        yield session
        session.close()


def step(session):
    session.wait(0.05)


def test_the_home_view_frames_the_network_avatar_with_a_margin(session):
    assert_framed_with_a_margin(session)


def test_network_frames_are_refined_on_the_worker_and_differ_from_the_coarse_ones(session):
    camera = session.avatar.camera()
    serial = session.request_render([View(camera, 0)], session.manual_state({}))
    coarse = wait_for(session.rendered, TIMEOUT_S, "the coarse frame", step=lambda: step(session))
    assert coarse.error is None and coarse.refining and coarse.request.serial == serial
    refined = wait_for(session.refined, TIMEOUT_S, "the refined frame", step=lambda: step(session))
    assert refined.error is None and refined.request.serial == serial and refined.refine_ms > 0
    state = session.manual_state({})
    np.testing.assert_allclose(refined.images[0], render_view(session.avatar, View(camera, 0), state, "cpu"), atol=1e-4)
    np.testing.assert_allclose(coarse.images[0], render_view(session.avatar, View(camera, 0, "coarse"), state, "cpu"),
                               atol=1e-5)
    assert np.abs(refined.images[0] - coarse.images[0]).mean() > 1e-3
    assert session.figures(0).refine_ms == pytest.approx(refined.refine_ms)


def test_a_driver_folder_turns_the_head_and_poses_flame_expressions_in_a_loop(session, tmp_path):
    folder = write_driver_folder(tmp_path / "driver", session.avatar, YAWS)
    driver = session.drive_release_folder(folder)
    assert isinstance(driver, ReleaseFolderDriver) and driver.frame_count == len(YAWS)
    assert driver.fps == pytest.approx(25.0) and driver.poses_expressions
    updates = {}

    def looped() -> bool:
        update, events = session.poll()
        assert not events, events
        if update is not None:
            if update.position in updates and len(updates) >= 3:
                return True
            updates[update.position] = update
        return False

    wait_until(looped, TIMEOUT_S, "the folder to loop", step=lambda: step(session))
    assert all(update.tracker_ms is None and update.preview is None for update in updates.values())
    for position, update in updates.items():
        state = update.state
        angle = math.degrees(math.acos(np.clip((np.trace(state.rotation) - 1.0) / 2.0, -1.0, 1.0)))
        assert angle == pytest.approx(YAWS[position], abs=0.5)
        assert state.flame is not None and np.allclose(state.flame.jaw, [0.3, 0.0, 0.0])
    assert session.figures(0).tracker_ms is None
    turned = max(updates.values(), key=lambda update: YAWS[update.position])
    straight = session.manual_state({})
    means = session.avatar.head_means(0, turned.state), session.avatar.head_means(0, straight)
    assert (means[0] - means[1]).norm(dim=1).mean() > 1e-2  # the head moved
    started = time.monotonic()
    session.stop_driving()
    assert time.monotonic() - started < 1.0
    assert not [thread for thread in threading.enumerate() if thread.name == "driving driver"]


def test_a_hostile_or_empty_folder_fails_in_one_line_and_the_current_driver_goes_on(session, tmp_path):
    driving = session.drive_release_folder(write_driver_folder(tmp_path / "good", session.avatar, YAWS))
    marker = tmp_path / "marker"
    with pytest.raises(ModelFileError) as error:
        session.drive_release_folder(write_hostile_folder(tmp_path / "hostile", marker))
    assert "refused" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="neither smoothed.pkl nor optim.pkl"):
        session.drive_release_folder(tmp_path / "empty")
    assert session.driver is driving
    wait_for(lambda: session.poll()[0], TIMEOUT_S, "frames of the first folder", step=lambda: step(session))
    session.stop_driving()


def test_a_folder_driven_state_renders_a_turned_head(session, tmp_path):
    driver = session.drive_release_folder(write_driver_folder(tmp_path / "driver", session.avatar, [20.0]))
    update = wait_for(lambda: session.poll()[0], TIMEOUT_S, "a frame", step=lambda: step(session))
    session.stop_driving()
    camera = session.avatar.camera()
    with torch.inference_mode():
        turned = render_view(session.avatar, View(camera, 0, "coarse"), update.state, "cpu")
        straight = render_view(session.avatar, View(camera, 0, "coarse"), session.manual_state({}), "cpu")
    assert driver.frame_count == 1 and np.abs(turned - straight).mean() > 1e-2
