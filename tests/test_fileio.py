"""Atomic writes: every writer goes through :class:`core.fileio.AtomicFile`, so every file gets
a normal file's mode (as ``open`` gives it, under the umask) and a failure leaves no trace."""

from __future__ import annotations

import errno
import os
import signal
import stat
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from plyfile import PlyData

from core.errors import OutputPathError
from core.fileio import AtomicFile, remove_stranded_temporaries, write_bytes_atomic, write_json_atomic
from core.media import AtomicMp4Writer, write_png_atomic
from core.render import save_ply
from core.render.scenes import head_scene

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


def _write_mp4(path: Path) -> None:
    with AtomicMp4Writer(path, 25.0, 64, 48) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))


WRITERS = {
    "ply": lambda path: save_ply(head_scene(50, 10, channels=3, seed=0), path),
    "json": lambda path: write_json_atomic(path, {"a": 1}),
    "png": lambda path: write_png_atomic(path, np.zeros((8, 8, 3), np.uint8)),
    "mp4": _write_mp4,
}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_writer_gives_the_mode_open_gives_under_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        with open(tmp_path / "plain", "w"):
            pass
        for kind, write in WRITERS.items():
            write(tmp_path / f"out.{kind}")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["plain", *(f"out.{kind}" for kind in WRITERS)], 0o666 & ~umask)


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), AtomicFile(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == b"old"


def test_a_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
    def refuse(source, target):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputPathError, match="cannot write"):
        write_bytes_atomic(tmp_path / "a.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_refused_as_a_target_before_anything_is_written(tmp_path):
    occupied = tmp_path / "taken"
    occupied.mkdir()
    with pytest.raises(OutputPathError, match="it is a folder"):
        write_bytes_atomic(occupied, b"data")
    assert list(tmp_path.iterdir()) == [occupied] and not any(occupied.iterdir())


def test_a_failing_ply_export_leaves_nothing(tmp_path, monkeypatch):
    def fail(self, stream):
        stream.write(b"ply\n")
        raise OSError("no space left on device")

    monkeypatch.setattr(PlyData, "write", fail)
    with pytest.raises(OutputPathError, match="no space"):
        WRITERS["ply"](tmp_path / "avatar.ply")
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_stranded_before_its_block_is_removed_when_the_run_ends(tmp_path):
    stranded = AtomicFile(tmp_path / "out.bin")  # as when a signal arrives before its `with` begins
    assert stranded.temporary.exists()
    remove_stranded_temporaries()
    assert list(tmp_path.iterdir()) == []


def test_a_signal_right_after_a_temporary_is_created_cannot_strand_it(tmp_path, monkeypatch):
    """The signal arrives as the file comes into being; wherever its handler raises (in the main
    thread, at its next chance), no file outlives the run."""

    class Ended(Exception):
        pass

    def ended(number, frame):
        raise Ended

    real_open = os.open

    def open_then_signal(*args, **kwargs):
        descriptor = real_open(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return descriptor

    previous = signal.signal(signal.SIGTERM, ended)
    try:
        with monkeypatch.context() as patch, pytest.raises(Ended):
            patch.setattr(os, "open", open_then_signal)
            AtomicFile(tmp_path / "out.bin")
            time.sleep(1.0)  # the handler runs in the main thread at its next chance
    finally:
        signal.signal(signal.SIGTERM, previous)
    remove_stranded_temporaries()
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_the_encoder_opens_leaves_no_temporary_video(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cv2, "VideoWriter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        AtomicMp4Writer(tmp_path / "out.mp4", 25.0, 64, 48)
    assert list(tmp_path.iterdir()) == []
