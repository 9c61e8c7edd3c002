"""The loopback camera (core.driving.loopback): a sample video served as a live MJPEG stream
on 127.0.0.1, read back through OpenCV's FFmpeg backend as a network camera would be."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from core.driving.frame_code import CLOCK_BITS, INDEX_BITS, read_code, stamp_code
from core.driving.loopback import LoopbackCamera
from core.errors import FrameSourceError


@pytest.fixture()
def sample_video(samples_dir):
    return samples_dir / "videos" / "talking_d19.mp4"


def read_index(image: np.ndarray) -> int | None:
    code = read_code(image)
    return None if code is None else code.index


@pytest.mark.parametrize("quality", [95, 60])
def test_corner_code_survives_jpeg(quality):
    rng = np.random.default_rng(3)
    now = 1_800_000_000.0
    for index, age_s in [(0, 0.0), (1, 0.001), (255, 0.05), (256, 1.0), (12345, 3600.0), ((1 << INDEX_BITS) - 1, 0.5)]:
        frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # noise right up to the code
        ok, jpeg = cv2.imencode(".jpg", stamp_code(frame, index, now - age_s), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        code = read_code(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), now_s=now)
        assert code.index == index
        assert code.sent_s == pytest.approx(now - age_s, abs=0.0011)


def test_the_send_time_unwraps_to_the_latest_match():
    """The code keeps CLOCK_BITS bits of milliseconds: a frame read after the clock's bits wrapped
    around still reads as sent just before, not 4.7 hours later."""
    wrap_s = (1 << CLOCK_BITS) / 1000.0
    sent = wrap_s * 1000 - 0.2  # 200 ms before the low bits wrap around to zero
    frame = stamp_code(np.zeros((16, 168, 3), np.uint8), 7, sent)
    assert read_code(frame, now_s=sent + 0.5).sent_s == pytest.approx(sent, abs=0.0011)
    assert read_code(frame, now_s=sent).sent_s == pytest.approx(sent, abs=0.0011)


def test_frames_without_a_code_read_as_none(sample_video):
    capture = cv2.VideoCapture(str(sample_video))
    ok, frame = capture.read()
    capture.release()
    assert ok
    assert read_code(frame) is None
    assert read_code(np.zeros((4, 4, 3), np.uint8)) is None
    with pytest.raises(ValueError, match="too small"):
        stamp_code(np.zeros((16, 100, 3), np.uint8), 1)


def test_an_unreadable_video_is_a_frame_source_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(FrameSourceError, match="broken.mp4"):
        LoopbackCamera(broken)


def _read_indices(url: str, count: int) -> tuple[list[int | None], list[float], tuple[int, ...]]:
    """Indices of the next ``count`` frames of the stream, when each was read, their shape."""
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    assert capture.isOpened()
    indices, times, shape = [], [], ()
    try:
        for _ in range(count):
            ok, frame = capture.read()
            assert ok, "the stream ended early"
            indices.append(read_index(frame))
            times.append(time.monotonic())
            shape = frame.shape
    finally:
        capture.release()
    return indices, times, shape


def test_the_stream_plays_the_video_at_its_rate_with_indices(sample_video):
    with LoopbackCamera(sample_video, size=(640, 480), fps=30.0) as camera:
        indices, times, shape = _read_indices(camera.url, 45)
        assert shape == (480, 640, 3)
        assert indices == list(range(indices[0], indices[0] + 45))  # every frame, in order, each stamped
        elapsed = times[-1] - times[0]
        assert 44 / 30.0 * 0.7 < elapsed < 44 / 30.0 * 1.5, elapsed  # paced at 30 frames per second
        assert camera.frames_sent >= 45


def test_dropped_frames_never_reach_the_client(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=30.0) as camera:
        capture = cv2.VideoCapture(camera.url, cv2.CAP_FFMPEG)
        try:
            first = [read_index(capture.read()[1]) for _ in range(5)]
            camera.drop(7)
            later = [read_index(capture.read()[1]) for _ in range(20)]
        finally:
            capture.release()
    indices = first + later
    gaps = np.diff(indices)
    assert sorted(gaps)[-1] == 8 and all(gap == 1 for gap in sorted(gaps)[:-1]), indices


def test_a_stall_holds_frames_back_and_the_stream_goes_on(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=30.0) as camera:
        capture = cv2.VideoCapture(camera.url, cv2.CAP_FFMPEG)
        try:
            for _ in range(5):
                assert capture.read()[0]
            camera.stall(1.5)
            times, indices = [time.monotonic()], []
            for _ in range(60):
                ok, frame = capture.read()
                assert ok, "a stalled stream must stay open"
                times.append(time.monotonic())
                indices.append(read_index(frame))
        finally:
            capture.release()
    assert max(np.diff(times)) > 1.0  # nothing came for the stall's length
    assert indices == list(range(indices[0], indices[0] + 60))  # the video resumes where it stopped


def test_disconnect_ends_open_streams_and_new_ones_are_served(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=30.0) as camera:
        capture = cv2.VideoCapture(camera.url, cv2.CAP_FFMPEG)
        try:
            assert capture.read()[0]
            camera.disconnect()
            started = time.monotonic()
            while capture.read()[0]:  # frames already buffered, then the end
                assert time.monotonic() - started < 5.0, "the stream did not end"
        finally:
            capture.release()
        indices, _, _ = _read_indices(camera.url, 3)
        assert None not in indices


def test_other_paths_are_not_found(sample_video):
    with LoopbackCamera(sample_video) as camera:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(camera.url.replace("/video", "/other"), timeout=5)
        assert raised.value.code == 404


def test_a_short_video_loops_from_memory_with_the_same_pictures(tmp_path, monkeypatch):
    """Past its end the video plays again, decoded only once (later loops come from memory)."""
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255)]
    video = tmp_path / "four.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for colour in colours:
        writer.write(np.full((240, 320, 3), colour, np.uint8))
    writer.release()
    with LoopbackCamera(video, fps=60.0) as camera:
        reads = []
        original_read = camera._video.read
        monkeypatch.setattr(camera._video, "read", lambda: reads.append(1) or original_read())
        capture = cv2.VideoCapture(camera.url, cv2.CAP_FFMPEG)
        try:
            frames = [capture.read()[1] for _ in range(14)]
        finally:
            capture.release()
    indices = [read_index(frame) for frame in frames]
    assert indices == list(range(indices[0], indices[0] + 14))
    pictures = [tuple(int(v) for v in np.median(frame[100:], axis=(0, 1))) for frame in frames]  # below the code
    nearest = [int(np.argmin([np.abs(np.subtract(p, c)).sum() for c in colours])) for p in pictures]
    assert all((later - earlier) % 4 == 1 for earlier, later in zip(nearest, nearest[1:])), nearest
    assert len(reads) <= 5  # four frames and the read that found the end, then memory
