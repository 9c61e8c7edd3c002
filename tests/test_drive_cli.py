"""``omg-avatar drive`` on a sample clip: the MP4, the summary, clean ends and one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import core.avatar.view as view_module
import core.cli.drive as drive_module
import core.tracking.sources as sources_module
from core.cli import main
from core.errors import FrameSourceError
from core.media import AtomicMp4Writer
from core.tracking.sources import SourceEvent, VideoFileSource

SIZE = 512


@pytest.fixture(scope="module")
def avatar_file(einstein_avatar_file) -> Path:
    return einstein_avatar_file


@pytest.fixture(scope="module")
def driving_video(samples_dir) -> Path:
    return samples_dir / "videos" / "talking_d0.mp4"


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    return frames


def _leftovers(folder: Path) -> list[str]:
    """Hidden temporary files left in ``folder``."""
    return [path.name for path in folder.iterdir() if path.name.startswith(".")]


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omg-avatar: error: "), captured.err
    return lines[0]


def test_drive_writes_every_frame_to_an_mp4_and_prints_the_summary(avatar_file, driving_video, tmp_path, capsys):
    output = tmp_path / "driven.mp4"
    code = main(["drive", str(avatar_file), "--video", str(driving_video), "-o", str(output),
                 "--max-frames", "8", "--renderer", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    frames = _video_frames(output)
    assert len(frames) == 8 and frames[0].shape == (SIZE, SIZE, 3)
    assert np.ptp(frames[-1]) > 100  # a rendered face, not a blank frame
    assert "frames:           8 (8 with a face)" in out
    assert "--max-frames 8 reached" in out
    assert "FPS:" in out
    for stage in drive_module.STAGES:
        assert f"{stage} " in out.split("ms per frame:")[1]
    assert _leftovers(tmp_path) == []


def test_drive_writes_its_summary_as_json(avatar_file, driving_video, tmp_path):
    summary_file = tmp_path / "drive.json"
    code = main(["drive", str(avatar_file), "--video", str(driving_video), "--max-frames", "6", "--lod", "1",
                 "--renderer", "cpu", "--json", str(summary_file)])  # fmt: skip
    assert code == 0
    summary = json.loads(summary_file.read_text())
    assert (summary["frames"], summary["tracked_frames"], summary["lod"], summary["renderer"]) == (6, 6, 1, "cpu")
    assert summary["fps"] > 0 and set(summary["ms_per_frame"]) == set(drive_module.STAGES)
    assert summary["gaussians"] > 1000 and "cpu" in summary["machine"]


def test_drive_renders_a_novel_view(avatar_file, driving_video, tmp_path, capsys):
    outputs = {}
    for yaw in (0, 40):
        outputs[yaw] = tmp_path / f"yaw{yaw}.mp4"
        code = main(["drive", str(avatar_file), "--video", str(driving_video), "-o", str(outputs[yaw]),
                     "--max-frames", "2", "--lod", "0", "--yaw", str(yaw), "--pitch", "10"])  # fmt: skip
        assert code == 0
    frontal, turned = (_video_frames(outputs[yaw])[-1].astype(float) for yaw in (0, 40))
    assert np.abs(frontal - turned).mean() > 10  # the camera moved
    assert "LOD 0" in capsys.readouterr().out


def test_a_webcam_that_vanishes_ends_cleanly_with_a_summary(avatar_file, driving_video, tmp_path, capsys, monkeypatch):
    opened = []

    class VanishingWebcam(VideoFileSource):
        """A 'webcam' that delivers the first frames of a clip, then is unplugged for good."""

        def __init__(self, index: int):
            if opened:
                raise FrameSourceError(f"cannot open webcam {index}: /dev/video{index} does not exist")
            opened.append(index)
            super().__init__(driving_video)
            self.name = f"webcam {index}"

        def read(self):
            frame = super().read()
            return SourceEvent.DISCONNECTED if isinstance(frame, SourceEvent) or frame.index >= 6 else frame

    monkeypatch.setattr(sources_module, "WebcamSource", VanishingWebcam)
    output = tmp_path / "webcam.mp4"
    started = time.monotonic()
    code = main(["drive", str(avatar_file), "--webcam", "3", "-o", str(output), "--reconnect", "1"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert "webcam 3 stopped delivering frames: reconnecting" in captured.err  # one line while it retries
    assert "webcam 3 disconnected" in captured.out
    assert time.monotonic() - started < 30
    frames = int(captured.out.split("frames:")[1].split()[0])
    assert 1 <= frames <= 6 and len(_video_frames(output)) == frames  # a live source may drop frames


def test_an_interrupt_leaves_no_partial_video(avatar_file, driving_video, tmp_path, capsys, monkeypatch):
    renders = []

    def render_then_interrupt(*args, **kwargs):
        renders.append(1)
        if len(renders) == 4:  # the warm-up render, then three frames
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = view_module.render
    monkeypatch.setattr(view_module, "render", render_then_interrupt)
    output = tmp_path / "interrupted.mp4"
    code = main(["drive", str(avatar_file), "--video", str(driving_video), "-o", str(output)])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert not output.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("content", [None, b"PK\x03\x04 not an avatar archive"])
def test_missing_or_corrupt_avatar_files_are_one_line_errors(driving_video, tmp_path, capsys, content):
    avatar = tmp_path / "broken.omg"
    if content is not None:
        avatar.write_bytes(content)
    output = tmp_path / "out.mp4"
    assert main(["drive", str(avatar), "--video", str(driving_video), "-o", str(output)]) == 2
    assert "broken.omg" in _one_error_line(capsys)
    assert not output.exists()


def test_unreadable_or_faceless_videos_are_one_line_errors(avatar_file, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("plain text, not a video")
    blank = tmp_path / "blank.mp4"
    with AtomicMp4Writer(blank, 25.0, 256, 256) as writer:
        for _ in range(5):
            writer.write(np.full((256, 256, 3), 128, np.uint8))
    output = tmp_path / "out" / "driven.mp4"
    for video, message in ((text, "notes.mp4"), (blank, "no face found in blank.mp4")):
        assert main(["drive", str(avatar_file), "--video", str(video), "-o", str(output)]) == 2
        assert message in _one_error_line(capsys)
        assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_a_level_of_detail_the_avatar_lacks_is_a_one_line_error(avatar_file, driving_video, capsys):
    assert main(["drive", str(avatar_file), "--video", str(driving_video), "--lod", "7"]) == 2
    assert "LOD 7" in _one_error_line(capsys)


def test_the_mp4_writer_keeps_nothing_when_left_through_an_exception(tmp_path):
    target = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), AtomicMp4Writer(target, 25.0, 64, 48) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("encoding went wrong")
    assert list(tmp_path.iterdir()) == []
    with AtomicMp4Writer(target, 25.0, 64, 48) as writer:
        for value in (0, 255):
            writer.write(np.full((48, 64, 3), value, np.uint8))
        with pytest.raises(ValueError, match="64x48"):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    assert [path.name for path in tmp_path.iterdir()] == ["clip.mp4"]
    assert len(_video_frames(target)) == 2
