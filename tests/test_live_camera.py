"""Live cameras over the loopback camera (core.driving.live, core.tracking.sources): a stream
URL opens through OpenCV's FFmpeg backend, only the newest frame is read, a stall or a
closed server is noticed and reconnected, and a URL that never answers is one line in
under 5 s."""

from __future__ import annotations

import argparse
import socket
import time

import numpy as np
import pytest

from core.arguments import camera_spec
from core.driving.frame_code import stamp_code
from core.driving.latency import LatencyMeter
from core.driving.live import LiveCamera
from core.driving.loopback import LoopbackCamera
from core.errors import FrameSourceError
from core.tracking.sources import CaptureThread, Frame, FrameSource, SourceEvent, StreamSource
from core.tracking.stream_urls import shown_url


@pytest.fixture()
def sample_video(samples_dir):
    return samples_dir / "videos" / "talking_d19.mp4"


def read_until(camera: LiveCamera, wanted, timeout_s: float):
    """Read ``camera`` until ``wanted(item)``; the items read before it (Nones left out), and
    the item. Fails after ``timeout_s``."""
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        item = camera.read()
        if item is not None and wanted(item):
            return seen, item
        if item is not None:
            seen.append(item)
    raise AssertionError(f"nothing wanted within {timeout_s} s; read {[getattr(i, 'index', i) for i in seen][-5:]}")


def is_frame(item) -> bool:
    return isinstance(item, Frame)


# ----------------------------------------------------------------- specs and errors


def test_camera_specs_are_numbers_or_stream_urls():
    assert camera_spec("0") == 0 and camera_spec(" 12 ") == 12
    for url in ("http://192.168.1.20:8080/video", "rtsp://cam.local/stream1", "https://example.org/live.mjpg"):
        assert camera_spec(url) == url
    for bad in ("-1", "webcam", "ftp://host/x", "http://", "/dev/video0"):
        with pytest.raises(argparse.ArgumentTypeError, match="webcam number"):
            camera_spec(bad)


def test_passwords_never_show():
    assert shown_url("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert shown_url("http://10.0.0.5:8080/video") == "http://10.0.0.5:8080/video"
    with pytest.raises(FrameSourceError) as raised:
        StreamSource("rtsp://admin:secret@127.0.0.1:9/live")
    assert "secret" not in str(raised.value) and "admin:***@127.0.0.1" in str(raised.value)


def test_a_url_that_never_answers_is_one_line_within_5_s():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # the kernel accepts connections; nobody ever answers
    try:
        started = time.monotonic()
        with pytest.raises(FrameSourceError) as raised:
            LiveCamera(f"http://127.0.0.1:{silent.getsockname()[1]}/video").read()
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    message = str(raised.value)
    assert elapsed < 5.0, elapsed
    assert "\n" not in message and "no video arrived within" in message, message


def test_nothing_listening_and_a_wrong_path_say_so(sample_video):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    started = time.monotonic()
    with pytest.raises(FrameSourceError, match=f"nothing is listening on 127.0.0.1:{port}"):
        StreamSource(f"http://127.0.0.1:{port}/video")
    assert time.monotonic() - started < 2.0  # refused at once, not after the open timeout
    with LoopbackCamera(sample_video, size=(320, 240)) as camera:
        with pytest.raises(FrameSourceError, match="HTTP 404"):
            StreamSource(camera.url.replace("/video", "/camera"))


# ----------------------------------------------------------------- live behaviour


def test_latency_per_group_charges_each_display_to_the_frame_it_shows():
    meter = LatencyMeter()
    shown_at = [100.0, 100.1, 100.2, 100.4, 100.6, 100.7]
    groups = ["a", "a", "b", "b", "b", "a"]
    latencies_s = [0.05, 0.06, 0.1, 0.2, 0.3, 0.07]
    for index, (now, group, latency) in enumerate(zip(shown_at, groups, latencies_s)):
        meter.shown(index, now - latency, now_s=now, group=group)
    by_group = meter.summary_by_group()
    assert list(by_group) == ["a", "b"]
    a, b = by_group["a"], by_group["b"]
    assert a["frames_shown"] == 3 and b["frames_shown"] == 3
    assert a["end_to_end_fps"] == pytest.approx(2 / 0.2) and b["end_to_end_fps"] == pytest.approx(3 / 0.5)
    assert a["latency_ms_median"] == pytest.approx(60.0) and b["latency_ms_median"] == pytest.approx(200.0)
    assert b["latency_ms_max"] == pytest.approx(300.0) and a["latency_ms_p95"] <= 70.0
    assert meter.summary()["frames_shown"] == 6


def test_the_newest_frame_is_read_and_stale_ones_are_dropped(sample_video):
    """A consumer slower than the stream gets fresh frames: the camera's frames in between are
    dropped and counted, never queued, so the latency does not grow."""
    meter = LatencyMeter()
    with LoopbackCamera(sample_video, size=(640, 480), fps=30.0) as server:
        camera = LiveCamera(server.url, stamped=True)
        try:
            read_until(camera, is_frame, 5.0)
            for _ in range(25):  # 2.5 s at 10 frames per second against the stream's 30
                _, frame = read_until(camera, is_frame, 2.0)
                meter.shown(frame.index, frame.timestamp_s)
                time.sleep(0.1)
            status = camera.status()
        finally:
            camera.close()
    figures = meter.summary()
    assert figures["frames_shown"] == 25
    assert figures["frames_dropped"] > 25  # about two of every three frames
    assert status.dropped > 25 and status.resolution == (640, 480)
    assert 20.0 < status.fps < 40.0, status.fps
    assert figures["latency_ms_p95"] < 150.0, figures  # read fresh, not from a backlog
    first, last = figures["latency_ms_median_per_window"][0], figures["latency_ms_median"]
    assert last < first + 50.0


def test_a_3_s_stall_is_noticed_within_2_s_and_driving_resumes_within_2_s(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=30.0) as server:
        camera = LiveCamera(server.url, stamped=True)
        try:
            _, frame = read_until(camera, is_frame, 5.0)
            server.stall(3.0)
            stalled_at = time.monotonic()
            _, event = read_until(camera, lambda item: item is SourceEvent.STALLED, 4.0)
            assert time.monotonic() - stalled_at < 2.0  # noticed
            frames_back_at = stalled_at + 3.0
            before, event = read_until(camera, lambda item: item is SourceEvent.RESUMED, 6.0)
            assert not [item for item in before if isinstance(item, SourceEvent)]  # one status, no storm
            _, frame_after = read_until(camera, is_frame, 2.0)
            assert time.monotonic() - frames_back_at < 2.0  # resumed
            assert camera.describe(SourceEvent.STALLED).endswith("stopped delivering frames: reconnecting")
        finally:
            camera.close()
    assert frame_after.index > frame.index


def test_a_server_restart_is_reconnected_without_reopening(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=30.0) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        camera = LiveCamera(server.url)
        read_until(camera, is_frame, 5.0)
    try:
        read_until(camera, lambda item: item is SourceEvent.STALLED, 4.0)
        time.sleep(1.5)  # down for a while: attempts fail, backing off
        with LoopbackCamera(sample_video, size=(320, 240), fps=30.0, port=port):
            back_at = time.monotonic()
            read_until(camera, lambda item: item is SourceEvent.RESUMED, 4.0)
            read_until(camera, is_frame, 2.0)
            assert time.monotonic() - back_at < 2.0
    finally:
        camera.close()


def test_a_camera_that_stays_gone_ends_after_give_up(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=30.0) as server:
        camera = LiveCamera(server.url, give_up_after_s=1.0)
        read_until(camera, is_frame, 5.0)
        server.disconnect()
    try:
        started = time.monotonic()
        seen, event = read_until(camera, lambda item: item is SourceEvent.DISCONNECTED, 8.0)
        assert SourceEvent.STALLED in seen and time.monotonic() - started >= 0.9
        assert "did not come back within 1 s" in camera.describe(event)
    finally:
        camera.close()


def test_a_stream_without_codes_cannot_measure_latency(sample_video):
    with LoopbackCamera(sample_video, size=(320, 240), fps=60.0, stamped=False) as server:
        camera = LiveCamera(server.url, stamped=True)
        try:
            with pytest.raises(FrameSourceError, match="carries no frame codes"):
                read_until(camera, is_frame, 5.0)
        finally:
            camera.close()


# ----------------------------------------------------------------- pieces


class _Script(FrameSource):
    """Frames and events in a given order."""

    name = "script"

    def __init__(self, items):
        self._items = list(items)

    def read(self):
        return self._items.pop(0) if len(self._items) > 1 else self._items[0]


def test_the_capture_thread_drops_frames_but_never_events():
    frames = [Frame(np.zeros((2, 2, 3), np.uint8), index, 0.0) for index in range(4)]
    script = _Script([frames[0], frames[1], SourceEvent.STALLED, frames[2], SourceEvent.RESUMED, frames[3],
                      SourceEvent.DISCONNECTED])  # fmt: skip
    capture = CaptureThread(script, max_queued=1).start()
    capture._thread.join(2.0)  # everything queued before the consumer reads
    items = []
    while (item := capture.get(timeout=0.5)) is not None:
        items.append(item.index if isinstance(item, Frame) else item)
    assert items == [SourceEvent.STALLED, SourceEvent.RESUMED, 3, SourceEvent.DISCONNECTED]
    assert capture.dropped == 3 and capture.event is SourceEvent.DISCONNECTED


def test_the_latency_meter_counts_drops_across_the_index_wrap():
    meter = LatencyMeter()
    start = 1_800_000_000.0
    for step, index in enumerate([65533, 65534, 0, 0, 65535, 3, 4]):  # a repeat, an older frame, a gap
        meter.shown(index, sent_s=start + step / 30.0, now_s=start + step / 30.0 + 0.040 + 0.001 * step)
    figures = meter.summary()
    assert figures["frames_shown"] == 5  # 65533, 65534, 0, 3, 4
    assert figures["frames_dropped"] == 3  # 65535, 1 and 2 never shown
    assert figures["latency_ms_median"] == pytest.approx(42.0, abs=0.2)  # of 40, 41, 42, 45 and 46
    assert figures["latency_ms_max"] == pytest.approx(46.0, abs=0.2)


def test_codes_read_by_a_stamped_camera_carry_the_send_time(sample_video):
    sent = time.time() - 0.25
    frame = stamp_code(np.zeros((240, 320, 3), np.uint8), 4242, sent)
    camera = LiveCamera(0, stamped=True)
    restamped = camera._stamped(Frame(frame, 0, time.time()))
    assert restamped.index == 4242 and restamped.timestamp_s == pytest.approx(sent, abs=0.002)
