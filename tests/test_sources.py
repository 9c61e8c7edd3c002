"""Frame sources and the capture thread: newest frame wins, ends are events, stop is prompt."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from waiting import wait_until

from core.errors import FrameSourceError
from core.tracking import sources
from core.tracking.sources import (
    CaptureThread,
    Frame,
    FrameSource,
    ImageFolderSource,
    ImageSource,
    SourceEvent,
    VideoFileSource,
    WebcamSource,
    open_source,
    why_webcam_did_not_open,
)

STOP_LIMIT_S = 1.0


class CountingSource(FrameSource):
    """``count`` tiny frames at ``fps``, each read taking ``read_s``; then ENDED or ``fail_with``.
    ``reads`` counts the reads begun."""

    name = "counting"

    def __init__(self, count: int, read_s: float = 0.0, fps: float = 100.0, fail_with=None):
        self.count, self.read_s, self.fps, self.fail_with = count, read_s, fps, fail_with
        self.produced = self.reads = 0
        self.closed = False

    def read(self) -> Frame | SourceEvent:
        self.reads += 1
        if self.produced == self.count:
            if self.fail_with is not None:
                raise self.fail_with
            return SourceEvent.ENDED
        time.sleep(self.read_s)
        frame = Frame(np.zeros((2, 2, 3), np.uint8), self.produced, self.produced / self.fps)
        self.produced += 1
        return frame

    def close(self) -> None:
        self.closed = True


def drain(capture: CaptureThread, consumer_delay_s: float = 0.0) -> list[int]:
    """Indices of the frames a consumer taking ``consumer_delay_s`` per frame receives."""
    indices = []
    for frame in capture:
        indices.append(frame.index)
        time.sleep(consumer_delay_s)
    return indices


# ----------------------------------------------------------------- capture thread


def test_fast_consumer_gets_every_frame_then_the_end_event():
    source = CountingSource(20, read_s=0.002)
    with CaptureThread(source, max_queued=32) as capture:
        assert drain(capture) == list(range(20))
        assert capture.event is SourceEvent.ENDED
    assert capture.dropped == 0 and source.closed


def test_slow_consumer_gets_the_newest_frame_and_stale_ones_are_dropped():
    source = CountingSource(50, read_s=0.001)
    with CaptureThread(source, max_queued=1) as capture:
        first = capture.get(timeout=1.0)
        wait_until(lambda: source.closed, 10.0, "the thread to read all 50 frames and the end")
        assert capture.get(timeout=1.0).index == 49
        assert capture.get(timeout=1.0) is SourceEvent.ENDED
    assert first.index < 49 and capture.dropped == 50 - 2  # all but the two frames received
    assert capture.event is SourceEvent.ENDED


def test_stop_returns_within_a_second_even_during_a_slow_read():
    source = CountingSource(1000, read_s=0.4)
    capture = CaptureThread(source).start()
    wait_until(lambda: source.reads > 0, 10.0, "the thread to begin a read")  # which takes 0.4 s
    started = time.monotonic()
    assert capture.stop() is True
    assert time.monotonic() - started < STOP_LIMIT_S
    assert not capture.running and source.closed


def test_a_read_error_becomes_a_failed_event_not_an_exception():
    source = CountingSource(3, fail_with=RuntimeError("device exploded"))
    with CaptureThread(source, max_queued=8) as capture:
        assert drain(capture) == [0, 1, 2]
    assert capture.event is SourceEvent.FAILED
    assert isinstance(capture.error, RuntimeError) and source.closed


def test_realtime_releases_frames_no_earlier_than_their_timestamps():
    source = CountingSource(6, fps=50.0)  # the last frame is due at 0.1 s
    started = time.monotonic()
    with CaptureThread(source, max_queued=8, realtime=True) as capture:
        assert drain(capture) == list(range(6))
    assert time.monotonic() - started >= 0.1


# ----------------------------------------------------------------- webcam


def test_missing_webcam_is_an_error_not_a_hang():
    started = time.monotonic()
    with pytest.raises(FrameSourceError, match="cannot open webcam 99"):
        WebcamSource(99)
    with pytest.raises(FrameSourceError, match="cannot open webcam 98"):
        open_source("98")
    assert time.monotonic() - started < 5.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="device files are Linux's")
def test_a_webcam_that_does_not_open_says_why(tmp_path, monkeypatch):
    assert why_webcam_did_not_open(3, tmp_path) == f"{tmp_path / 'video3'} does not exist (cameras present: none)"
    (tmp_path / "video0").touch()
    (tmp_path / "video2").touch()
    assert why_webcam_did_not_open(3, tmp_path).endswith("(cameras present: video0, video2)")
    assert "in use by another program" in why_webcam_did_not_open(2, tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "video2")  # as a user outside 'video'
    assert "may not open" in why_webcam_did_not_open(2, tmp_path) and "'video' group" in why_webcam_did_not_open(2, tmp_path)


class VanishingCamera:
    """A stand-in for cv2.VideoCapture whose device disappears after two frames."""

    def __init__(self, index):
        self.frames_left = 2

    def isOpened(self):
        return True

    def set(self, prop, value):
        return True

    def read(self):
        if self.frames_left == 0:
            return False, None
        self.frames_left -= 1
        return True, np.zeros((4, 6, 3), np.uint8)

    def release(self):
        pass


def test_vanished_webcam_is_a_disconnected_event(monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", VanishingCamera)
    with CaptureThread(WebcamSource(0), max_queued=8) as capture:
        frames = list(capture)
    assert [frame.rgb.shape for frame in frames] == [(4, 6, 3)] * 2
    assert frames[0].timestamp_s <= frames[1].timestamp_s
    assert capture.event is SourceEvent.DISCONNECTED


# ----------------------------------------------------------------- files


def test_unopenable_video_files_are_errors(tmp_path):
    with pytest.raises(FrameSourceError, match="video file not found"):
        VideoFileSource(tmp_path / "missing.mp4")
    (tmp_path / "fake.mp4").write_text("not a video")
    with pytest.raises(FrameSourceError, match="cannot open fake.mp4"):
        open_source(tmp_path / "fake.mp4")


def write_images(folder, count: int) -> None:
    folder.mkdir()
    for index in range(count):
        Image.new("RGB", (8, 6), (index * 40, 0, 0)).save(folder / f"frame_{index:03d}.png")


def test_image_folder_yields_its_images_in_order_and_skips_broken_ones(tmp_path):
    write_images(tmp_path / "frames", 3)
    (tmp_path / "frames" / "frame_001b.jpg").write_text("broken")
    (tmp_path / "frames" / "readme.txt").write_text("ignored")
    with open_source(tmp_path / "frames") as source:
        assert isinstance(source, ImageFolderSource)
        frames = list(source)
        assert source.read() is SourceEvent.ENDED
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert [frame.rgb[0, 0, 0] for frame in frames] == [0, 40, 80]
    assert [frame.timestamp_s for frame in frames] == pytest.approx([0.0, 1 / 30, 2 / 30])


def test_empty_image_folder_and_broken_image_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameSourceError, match="no images"):
        ImageFolderSource(tmp_path / "empty")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(FrameSourceError, match="broken.png"):
        ImageSource(tmp_path / "broken.png")


def test_single_image_is_one_frame_then_ended(tmp_path):
    Image.new("L", (5, 4), 9).save(tmp_path / "still.png")
    with open_source(tmp_path / "still.png") as source:
        frames = list(source)
        assert source.read() is SourceEvent.ENDED
    assert len(frames) == 1 and frames[0].rgb.shape == (4, 5, 3) and frames[0].timestamp_s == 0.0


# ----------------------------------------------------------------- sample videos


@pytest.mark.samples
def test_sample_video_yields_every_frame_with_video_timestamps(samples_dir):
    with VideoFileSource(samples_dir / "videos" / "talking_d0.mp4") as source:  # 78 frames at 25 fps
        frames = list(source)
        assert source.read() is SourceEvent.ENDED
    assert len(frames) == 78
    assert frames[0].rgb.shape == (512, 512, 3) and frames[0].rgb.dtype == np.uint8
    assert frames[-1].index == 77 and frames[-1].timestamp_s == pytest.approx(77 / 25)


@pytest.mark.samples
def test_sample_video_through_a_slow_consumer_drops_frames_and_ends(samples_dir):
    source = VideoFileSource(samples_dir / "videos" / "talking_d18.mp4")  # 216 frames
    with CaptureThread(source, max_queued=1) as capture:
        indices = drain(capture, consumer_delay_s=0.01)
    assert capture.event is SourceEvent.ENDED
    assert indices == sorted(set(indices)) and indices[-1] == 215  # the last frame is never dropped
    assert capture.dropped > 0 and len(indices) + capture.dropped == 216


@pytest.mark.samples
def test_sample_video_played_in_real_time_stops_within_a_second(samples_dir):
    capture = CaptureThread(VideoFileSource(samples_dir / "videos" / "talking_d3.mp4"), realtime=True)
    capture.start()
    first = capture.get(timeout=2.0)
    assert isinstance(first, Frame)
    assert isinstance(capture.get(timeout=2.0), Frame)  # playing: the next frame came when it was due
    started = time.monotonic()
    assert capture.stop()
    assert time.monotonic() - started < STOP_LIMIT_S
    assert capture.event is None  # stopped, not ended: the video is 12 s long
