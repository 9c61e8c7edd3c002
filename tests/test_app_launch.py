"""Starting the app: ``python -m app`` and ``omg-avatar app`` share one set of options (app/launch.py)."""

from __future__ import annotations

import subprocess
import sys

from app import launch
from core.session import RENDERER_CHOICES


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_both_entry_points_show_the_same_options():
    own, registered = _run("-m", "app", "--help"), _run("-m", "core.cli", "app", "--help")
    assert own.returncode == registered.returncode == 0
    assert own.stdout == registered.stdout
    for option in ("--photo", "--video", "--webcam", "--lod", "--renderer", "--method", "--config", "--window",
                   "--smoke", "--frames", "--screenshot", "--json"):
        assert option in own.stdout


def test_a_missing_photo_is_one_line_and_exit_status_2_without_opening_a_window(tmp_path):
    missing = tmp_path / "nope.jpg"
    result = _run("-m", "app", "--photo", str(missing))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"omg-avatar: error: photo not found: {missing}"]


def test_the_renderer_choices_are_the_sessions():
    assert launch.RENDERERS == RENDERER_CHOICES
