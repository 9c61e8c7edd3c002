"""Capture pieces that need no window: MP4 recording, the presenter's shared frame, and
the recent-files history."""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.recorder import Recorder
from app.settings import RECENT_LIMIT, RecentFiles
from app.shared_frame import SharedFrame
from core.session import MediaWriteError


def frame(value: int, size: int = 64) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = value
    return image


def test_recording_plays_in_real_time_and_appears_only_when_stopped(tmp_path):
    path = tmp_path / "take.mp4"
    before_start = time.monotonic()
    recorder = Recorder(path, 64, 64, fps=30.0)
    after_start = time.monotonic()
    for value in range(0, 250, 25):  # ten frames shown over about 0.5 s
        recorder.add(frame(value))
        time.sleep(0.05)
    assert not path.exists()
    before_stop = time.monotonic()
    assert recorder.stop() == path
    after_stop = time.monotonic()
    capture = cv2.VideoCapture(str(path))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    capture.release()
    # duplicated to a constant rate: the video lasts from the start to the stop, to a frame
    assert before_stop - after_start - 1 / 30.0 < frames / 30.0 <= after_stop - before_start + 1 / 30.0
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_stopping_before_any_frame_is_an_error_and_leaves_nothing(tmp_path):
    recorder = Recorder(tmp_path / "empty.mp4", 64, 64)
    with pytest.raises(MediaWriteError, match="nothing was recorded"):
        recorder.stop()
    assert list(tmp_path.iterdir()) == []


READER = """
import sys
from app.shared_frame import SharedFrame
reader = SharedFrame(sys.argv[1])
frames = [reader.read_new(), reader.read_new()]
print(frames[0].shape, int(frames[0].sum()), frames[1])
reader.release()
"""


def test_shared_frame_hands_a_whole_frame_to_another_process_once():
    writer = SharedFrame()
    try:
        image = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
        writer.write(image)
        result = subprocess.run([sys.executable, "-c", READER, writer.name], capture_output=True, text=True,
                                timeout=60, cwd=Path(__file__).resolve().parents[1])
        assert result.stdout.split("\n")[0] == f"(48, 80, 3) {int(image.sum())} None", result.stderr
        writer.write(image[:20, :30].copy())  # the block outlived the reader
        result = subprocess.run([sys.executable, "-c", READER, writer.name], capture_output=True, text=True,
                                timeout=60, cwd=Path(__file__).resolve().parents[1])
        assert result.stdout.startswith("(20, 30, 3)"), result.stderr
    finally:
        writer.release()


def test_shared_frame_refuses_frames_that_do_not_fit():
    writer = SharedFrame()
    try:
        with pytest.raises(ValueError, match="does not fit"):
            writer.write(np.zeros((4000, 10, 3), np.uint8))
    finally:
        writer.release()


def test_recent_files_are_newest_first_unique_bounded_and_existing(tmp_path):
    files = [tmp_path / f"photo{index}.jpg" for index in range(RECENT_LIMIT + 2)]
    for path in files:
        path.write_bytes(b"x")
    recent = RecentFiles(tmp_path / "settings")
    for path in files + [files[3]]:
        recent.add("photo", path)
    listed = recent.get("photo")
    assert listed[0] == str(files[3])
    assert len(listed) == RECENT_LIMIT and len(set(listed)) == RECENT_LIMIT
    files[-1].unlink()
    assert str(files[-1]) not in RecentFiles(tmp_path / "settings").get("photo")  # persisted, filtered
    assert recent.get("video") == []


def test_a_damaged_history_is_an_empty_one(tmp_path):
    (tmp_path / "recent.json").write_text("{not json")
    assert RecentFiles(tmp_path).get("photo") == []
    (tmp_path / "recent.json").write_text(json.dumps(["a", "list"]))
    assert RecentFiles(tmp_path).get("photo") == []
