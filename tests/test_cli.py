"""The omg-avatar command: help, version, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core import __version__
from core.cli import main


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"omg-avatar {__version__}"


def test_no_command_prints_help_listing_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: omg-avatar" in out and "track" in out


def test_installed_console_script_runs():
    """The entry point declared in pyproject.toml is installed and answers --help."""
    script = Path(sys.executable).parent / "omg-avatar"
    assert script.exists(), f"console script missing beside {sys.executable}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "One photo to an animatable" in result.stdout
