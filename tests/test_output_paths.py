"""Output paths: checked before any work starts (a folder, a place that cannot be written, one
of the inputs), a write that fails later is one error line, and SIGTERM or SIGHUP during a
run leaves no temporary file behind."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.avatar import reconstruct, save_avatar
from core.cli import main
from core.config import load_config
from core.tracking.photo import prepare_portrait
from waiting import wait_until

pytestmark = pytest.mark.samples


@pytest.fixture(scope="module")
def avatar_file(samples_dir, tmp_path_factory) -> Path:
    config = load_config("paper")
    portrait = prepare_portrait(samples_dir / "photos" / "einstein.jpg", config.tracking)
    return save_avatar(reconstruct(portrait, config=config), tmp_path_factory.mktemp("avatar") / "einstein.omg")


def _one_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omg-avatar: error: "), lines
    return lines[0]


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(avatar_file, samples_dir, tmp_path, capsys):
    avatar = tmp_path / "a.omg"
    shutil.copy(avatar_file, avatar)
    video = tmp_path / "in.mp4"
    shutil.copy(samples_dir / "videos" / "talking_d0.mp4", video)
    before = avatar.read_bytes(), video.read_bytes()
    (tmp_path / "link.omg").symlink_to(avatar)
    for argv in (["export", str(avatar), "-o", str(avatar)],
                 ["export", str(avatar), "-o", str(tmp_path / "link.omg")],
                 ["drive", str(avatar), "--video", str(video), "-o", str(video)],
                 ["track", str(video), "--json", str(tmp_path / "." / "in.mp4")]):  # fmt: skip
        assert main(argv) == 2
        assert "it is also an input" in _one_error(capsys)
    assert (avatar.read_bytes(), video.read_bytes()) == before


def test_an_output_that_is_a_folder_or_under_a_file_is_refused_before_any_work(avatar_file, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    for output, message in ((folder, "it is a folder"), (tmp_path / "notes.txt" / "a.ply", "is not a folder")):
        assert main(["export", str(avatar_file), "-o", str(output)]) == 2
        assert message in _one_error(capsys)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "out"] and not any(folder.iterdir())


def test_a_write_that_fails_later_is_one_error_line_and_leaves_nothing(avatar_file, tmp_path, capsys, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # creating a file fails as on a read-only disk
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["export", str(avatar_file), "-o", str(tmp_path / "a.ply")]) == 2
    assert "Read-only file system" in _one_error(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_drive_leaves_no_temporary_video(avatar_file, samples_dir, tmp_path, number):
    output = tmp_path / "out.mp4"
    run = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "drive", str(avatar_file), "--video",
         str(samples_dir / "videos" / "talking_d9.mp4"), "-o", str(output), "--renderer", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        wait_until(lambda: any(tmp_path.iterdir()) or run.poll() is not None, 120.0, "the temporary video")
        run.send_signal(number)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    name = signal.Signals(number).name
    assert run.returncode == 128 + number, err
    assert err.strip().splitlines()[-1] == f"omg-avatar: terminated ({name})"
    assert list(tmp_path.iterdir()) == []
