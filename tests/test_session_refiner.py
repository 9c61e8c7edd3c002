"""The refiner worker off the splat path: coarse frames keep coming while a slow refiner
runs, the refiner takes the newest frame (and the last one once it is free), it stops in
time, its errors arrive as frames, and the figures carry its cost."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn
from waiting import wait_for, wait_until

from core.config import load_config
from core.session import Session, View

#: Seconds the slow refiner takes per frame.
REFINE_S = 0.5
SIZE = 96
#: Seconds a finished refined frame may wait before the test's loop takes it.
POLL_SLACK_S = 0.25
TIMEOUT_S = 30.0


class SlowRefiner(nn.Module):
    """Sleeps (as torch's kernels do, without the GIL), then inverts the coarse RGB; ``fail``: raises."""

    def __init__(self, fail: bool = False):
        super().__init__()
        self.fail = fail
        self.calls = 0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(REFINE_S)
        if self.fail:
            raise RuntimeError("the refiner broke")
        return 1.0 - image[:, :3]


@pytest.fixture(scope="module")
def demo_avatar():
    session = Session(load_config("tiny"))
    try:
        job = session.reconstruct(None, "training-free")
        assert job.wait(120) and job.error is None, job.error
        return job.avatar
    finally:
        session.close()


def session_with(avatar, refiner: SlowRefiner) -> Session:
    session = Session(load_config("tiny"))
    session.set_avatar(dataclasses.replace(avatar, levels=avatar.levels, refiner=refiner), "slow")
    return session


def views(session) -> list[View]:
    return [View(session.avatar.camera().resized(SIZE, SIZE), 0)]


def test_coarse_frames_keep_coming_while_the_refiner_works_and_the_newest_is_refined(demo_avatar):
    refiner = SlowRefiner()
    session = session_with(demo_avatar, refiner)
    try:
        coarse, refined, serial = [], [], 0
        started = time.monotonic()

        def render_for(seconds: float) -> None:
            nonlocal serial
            while time.monotonic() - started < seconds:
                serial = session.request_render(views(session), session.manual_state({"yaw": serial % 40 - 20.0}))
                session.wait(0.05)
                if (frame := session.rendered()) is not None:
                    assert frame.error is None and frame.refining
                    coarse.append((time.monotonic(), frame))
                if (frame := session.refined()) is not None:
                    assert frame.error is None
                    refined.append((time.monotonic(), frame))

        render_for(3 * REFINE_S + 0.2)
        assert len(refined) >= 2
        figures = session.figures(0)
        assert figures.refine_ms >= 1000 * REFINE_S and figures.refine_ms == pytest.approx(1000 * REFINE_S, rel=0.5)
        assert 0.5 <= figures.refined_fps <= 1.25 / REFINE_S < figures.render_fps
        first, second = refined[0][0], refined[1][0]
        assert sum(first < when < second for when, _ in coarse) >= 3  # splats while one refinement runs
        serials = [frame.request.serial for _, frame in refined]
        assert serials == sorted(set(serials)) and len(refined) < len(coarse)
        # newest wins: a refinement starts on the newest request, not on a queued old one: no frame
        # rendered before it started (taken before then, allowing POLL_SLACK_S for the taking) is newer
        for when, frame in refined[1:]:
            started_by = when - frame.refine_ms / 1000.0 - POLL_SLACK_S
            assert frame.request.serial >= max((f.request.serial for t, f in coarse if t < started_by), default=0)
        # refined is the refiner's output of the same frame's features: 1 - coarse RGB
        by_serial = {frame.request.serial: frame for _, frame in coarse}
        shown = next((f for _, f in refined if f.request.serial in by_serial), None)
        if shown is not None:
            np.testing.assert_allclose(shown.images[0], 1.0 - by_serial[shown.request.serial].images[0], atol=1e-5)
        # once the requests stop, the last one is refined too (it was owed)
        last = serial
        frame = wait_for(lambda: _refined_serial(session, last), TIMEOUT_S, "the last request refined",
                         step=lambda: session.wait(0.05))
        assert frame.images[0].shape == (SIZE, SIZE, 3)
    finally:
        session.close()


def _rendered_serial(session, serial):
    frame = session.rendered()
    return frame if frame is not None and frame.request.serial == serial else None


def _refined_serial(session, serial):
    frame = session.refined()
    return frame if frame is not None and frame.request.serial == serial else None


def test_without_the_refiner_frames_are_not_refining_and_the_figures_say_so(demo_avatar):
    session = session_with(demo_avatar, SlowRefiner())
    try:
        session.set_use_refiner(False)
        session.request_render(views(session), session.manual_state({}))
        frame = wait_for(session.rendered, TIMEOUT_S, "a frame", step=lambda: session.wait(0.05))
        assert frame.error is None and not frame.refining
        assert session.figures(0).refine_ms is None and session.refined() is None
        coarse = View(views(session)[0].camera, 0, "coarse")
        session.set_use_refiner(True)
        session.request_render([coarse], session.manual_state({}))
        frame = wait_for(session.rendered, TIMEOUT_S, "a coarse frame", step=lambda: session.wait(0.05))
        assert not frame.refining  # only the final image is refined
    finally:
        session.close()


def test_a_failing_refiner_gives_frames_with_errors_and_rendering_goes_on(demo_avatar):
    session = session_with(demo_avatar, SlowRefiner(fail=True))
    try:
        session.request_render(views(session), session.manual_state({}))
        frame = wait_for(session.refined, TIMEOUT_S, "the failed refinement", step=lambda: session.wait(0.05))
        assert isinstance(frame.error, RuntimeError) and "the refiner broke" in str(frame.error)
        assert frame.images == ()
        serial = session.request_render(views(session), session.manual_state({"yaw": 10.0}))
        frame = wait_for(lambda: _rendered_serial(session, serial), TIMEOUT_S, "a frame after the failure",
                         step=lambda: session.wait(0.05))
        assert frame.error is None and frame.images[0].shape == (SIZE, SIZE, 3)
    finally:
        session.close()


def test_closing_during_a_refinement_returns_at_once_and_the_worker_ends(demo_avatar):
    refiner = SlowRefiner()
    session = session_with(demo_avatar, refiner)
    session.request_render(views(session), session.manual_state({}))
    wait_until(lambda: refiner.calls > 0, TIMEOUT_S, "a refinement under way", step=lambda: session.wait(0.01))
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < 1.5
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("render")], 2 * REFINE_S,
               "the render threads to end")
