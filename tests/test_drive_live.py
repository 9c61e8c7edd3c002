"""``omg-avatar drive --webcam URL`` following the loopback camera's live stream: the latency
JSON, a stall and a closed server mid-run, and the options that go with it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from core.cli import main
from core.driving.loopback import LoopbackCamera


@pytest.fixture()
def live_stream(samples_dir):
    with LoopbackCamera(samples_dir / "videos" / "talking_d0.mp4", size=(640, 480), fps=30.0) as camera:
        yield camera


def drive(avatar: Path, url: str, *options: str) -> int:
    return main(["drive", str(avatar), "--webcam", url, "--renderer", "cpu", "--lod", "0", *options])


def test_drive_follows_a_live_stream_and_measures_its_latency(einstein_avatar_file, live_stream, tmp_path, capsys):
    report = tmp_path / "latency.json"
    code = drive(einstein_avatar_file, live_stream.url, "--max-frames", "60", "--latency-json", str(report))
    out = capsys.readouterr().out
    assert code == 0
    figures = json.loads(report.read_text())
    assert figures["frames_shown"] == 60 and figures["input"] == live_stream.url
    # every frame shown was sent by this stream (the code's send time, to the millisecond) no
    # more than a moment ago, and the indices run on: dropped frames are the gaps
    assert 0.0 < figures["latency_ms_median"] <= figures["latency_ms_p95"] <= figures["latency_ms_max"] < 2000.0
    assert 0 <= figures["frames_dropped"] < 60
    assert 5.0 < figures["end_to_end_fps"] <= 31.0
    assert {"lod", "renderer", "machine", "ms_per_frame", "latency_ms_median_per_window"} <= set(figures)
    assert "latency:          median" in out and "frames: " in out


def test_a_stall_mid_run_is_one_line_each_way_and_driving_goes_on(einstein_avatar_file, live_stream, tmp_path, capsys):
    report = tmp_path / "latency.json"
    timer = threading.Timer(1.5, live_stream.stall, args=(3.0,))
    timer.start()
    try:
        code = drive(einstein_avatar_file, live_stream.url, "--max-frames", "110", "--latency-json", str(report))
    finally:
        timer.cancel()
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert captured.err.count("stopped delivering frames: reconnecting") == 1, captured.err
    assert captured.err.count("is back") == 1, captured.err
    figures = json.loads(report.read_text())
    assert figures["frames_shown"] == 110
    assert figures["latency_ms_median"] < 500.0  # the frames after the stall are fresh, not a backlog


def test_a_server_that_closes_for_good_ends_the_run_with_its_summary(einstein_avatar_file, samples_dir, capsys):
    camera = LoopbackCamera(samples_dir / "videos" / "talking_d0.mp4", size=(320, 240), fps=30.0).start()
    timer = threading.Timer(2.0, camera.close)
    timer.start()
    try:
        code = drive(einstein_avatar_file, camera.url, "--reconnect", "1")
    finally:
        timer.cancel()
        camera.close()
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert f"{camera.url} disconnected" in captured.out
    assert int(captured.out.split("frames:")[1].split()[0]) > 0


def test_latency_needs_a_live_camera(einstein_avatar_file, samples_dir, tmp_path, capsys):
    code = main(["drive", str(einstein_avatar_file), "--video", str(samples_dir / "videos" / "talking_d0.mp4"),
                 "--latency-json", str(tmp_path / "latency.json")])  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "--latency-json measures a live camera" in lines[0]


def test_a_bad_webcam_argument_says_what_is_expected(einstein_avatar_file, capsys):
    with pytest.raises(SystemExit):
        main(["drive", str(einstein_avatar_file), "--webcam", "camera-one"])
    assert "expected a webcam number (0, 1, ...) or a stream URL" in capsys.readouterr().err
