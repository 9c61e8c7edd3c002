"""One per-frame path: ``omg-avatar drive``, ``omg-avatar eval`` and the app's session drive
and render the same avatar with the same video into bit-identical frames."""

from __future__ import annotations

import numpy as np
import pytest

import core.cli.drive as drive_module
import core.evaluation.reenactment as reenactment
from core.avatar import load_avatar, reconstruct, save_avatar
from core.avatar.network_method import NetworkFiles
from core.avatar.view import View
from core.cli import main
from core.config import load_config
from core.evaluation.scoring import FrameScorer
from core.evaluation.sequences import WHITE, VideoSequence
from core.media import rgb8
from core.session import Session
from core.tracking.face_mesh import PortraitSegmenter
from waiting import wait_for

CONFIG = load_config("paper")
FRAMES = 6  # the driver's first frame (its neutral face, eval's source) and five driven frames
LOD = 1
TIMEOUT_S = 60.0

pytestmark = pytest.mark.samples


@pytest.fixture(scope="module")
def video(samples_dir):
    return samples_dir / "videos" / "talking_d0.mp4"


@pytest.fixture(scope="module")
def avatar_file(video, tmp_path_factory):
    """The training-free avatar of the video's first frame (eval's self-reenactment source)."""
    with PortraitSegmenter() as segmenter, VideoSequence(video, CONFIG, segmenter) as sequence:
        avatar = reconstruct(sequence.portrait(), "training-free", CONFIG)
    return save_avatar(avatar, tmp_path_factory.mktemp("path") / "source.omg")


def _recording(monkeypatch, module) -> list[tuple[object, np.ndarray]]:
    """Every (state, uint8 image) ``module`` renders through its ``render_view``."""
    renders, original = [], module.render_view

    def recorded(avatar, view, state, backend):
        image = original(avatar, view, state, backend)
        renders.append((state, rgb8(image)))
        return image

    monkeypatch.setattr(module, "render_view", recorded)
    return renders


@pytest.fixture(scope="module")
def drive_frames(avatar_file, video, tmp_path_factory):
    """``omg-avatar drive``'s frames 0..FRAMES-1, synchronous, neutral face from frame 0."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        renders = _recording(monkeypatch, drive_module)
        output = tmp_path_factory.mktemp("drive") / "driven.mp4"
        argv = ["drive", str(avatar_file), "--video", str(video), "--max-frames", str(FRAMES), "--synchronous",
                "--reference-frames", "1", "--background", "white", "--lod", str(LOD), "--renderer", "cpu",
                "-o", str(output)]  # fmt: skip
        assert main(argv) == 0
    assert renders[0][0] is None and len(renders) == FRAMES + 1  # the warm-up render, then every frame
    return [image for _, image in renders[1:]]


def test_eval_renders_what_drive_renders(avatar_file, video, drive_frames, monkeypatch):
    renders = _recording(monkeypatch, reenactment)
    monkeypatch.setattr(reenactment, "reconstruct", lambda *args, **kwargs: load_avatar(avatar_file))
    settings = reenactment.Settings(CONFIG, "training-free", NetworkFiles(), True, LOD, "cpu", max_frames=FRAMES)
    with PortraitSegmenter() as segmenter, FrameScorer(CONFIG.tracking, None) as scorer:
        sequence = VideoSequence(video, CONFIG, segmenter)
        scores, _, _ = reenactment.reenact(sequence, sequence, settings, scorer, lambda message: None)
    assert len(scores.frames) == FRAMES - 1
    driven = [image for _, image in renders]
    assert len(driven) == FRAMES - 1
    for index, (evaluated, drove) in enumerate(zip(driven, drive_frames[1:]), start=1):
        assert np.array_equal(evaluated, drove), f"frame {index} differs"
    assert not np.array_equal(drive_frames[1], drive_frames[-1])  # the frames move: the comparison is not vacuous


def test_the_app_session_renders_what_drive_renders(avatar_file, video, drive_frames):
    session = Session(CONFIG, backend="cpu")
    try:
        avatar = load_avatar(avatar_file)
        session.set_avatar(avatar, "source")
        session.drive_video(video, paced_by_consumer=True, reference_frames=1)
        view = View(avatar.camera(), LOD, background=WHITE)
        shown = {}
        while len(shown) < FRAMES:
            driven = wait_for(lambda: session.poll()[0], TIMEOUT_S, "a driven frame", step=lambda: session.wait(0.05))
            serial = session.request_render([view], driven.state)
            rendered = wait_for(session.rendered, TIMEOUT_S, "a rendered frame", step=lambda: session.wait(0.05))
            assert rendered.request.serial == serial and rendered.error is None
            shown[driven.position] = rgb8(rendered.images[0])
    finally:
        session.close()
    assert sorted(shown) == list(range(FRAMES))
    for index in range(1, FRAMES):
        assert np.array_equal(shown[index], drive_frames[index]), f"frame {index} differs"
