"""``omg-avatar reconstruct`` and ``omg-avatar export`` end to end, and their one-line errors."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.avatar import load_avatar
from core.cli import main
from core.render import load_ply

OMG_AVATAR = Path(sys.executable).parent / "omg-avatar"


@pytest.fixture(scope="module")
def reconstructed(samples_dir, tmp_path_factory):
    """(avatar file, stdout, stderr) of one in-process ``reconstruct`` run."""
    output = tmp_path_factory.mktemp("cli") / "einstein.omg"
    out, err = _run_captured(["reconstruct", str(samples_dir / "photos" / "einstein.jpg"), "-o", str(output)])
    return output, out, err


def _run_captured(argv: list[str]) -> tuple[str, str]:
    """Run ``main(argv)`` capturing its stdout and stderr; asserts exit status 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    assert status == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


@pytest.mark.samples
def test_reconstruct_writes_an_avatar_and_reports_seconds_and_gaussians(reconstructed):
    output, out, err = reconstructed
    avatar = load_avatar(output)
    assert avatar.method == "training-free"
    assert re.search(r"seconds: +\d+\.\d\d", out)
    for lod in range(avatar.num_lods):
        assert f"LOD {lod} Gaussians:  {avatar.num_gaussians(lod)} (" in out
    progress = [line for line in err.splitlines() if line.strip().endswith("done") or "%" in line]
    assert len(progress) >= 4 and "100% done" in err


@pytest.mark.samples
def test_export_writes_the_neutral_avatar_as_3dgs_ply(reconstructed, tmp_path):
    output = reconstructed[0]
    ply = tmp_path / "einstein.ply"
    out, _ = _run_captured(["export", str(output), "--lod", "1", "-o", str(ply)])
    exported, avatar = load_ply(ply), load_avatar(output)
    assert len(exported) == avatar.num_gaussians(1) and str(avatar.num_gaussians(1)) in out
    neutral = avatar.gaussians(1)
    assert (exported.means - neutral.means).abs().max() < 1e-5
    assert (exported.features[:, :3] - neutral.features).abs().max() < 1e-4


@pytest.mark.samples
def test_photo_without_a_face_is_one_line_error_and_no_file(samples_dir, tmp_path):
    output = tmp_path / "dog.omg"
    result = subprocess.run(
        [str(OMG_AVATAR), "reconstruct", str(samples_dir / "photos" / "dog_no_human_face.jpg"), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["omg-avatar: error: no face found in dog_no_human_face.jpg"]
    assert not output.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make_photo, message",
    [
        (lambda folder: folder / "absent.jpg", "image not found"),
        (lambda folder: _write(folder / "broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg"), "broken.jpg"),
    ],
    ids=["missing", "corrupt"],
)
def test_unreadable_photo_is_one_line_error_and_no_file(tmp_path, capsys, make_photo, message):
    output = tmp_path / "out.omg"
    assert main(["reconstruct", str(make_photo(tmp_path)), "-o", str(output)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omg-avatar: error: ") and message in lines[0]
    assert not output.exists()


def test_export_of_a_bad_avatar_file_is_one_line_error_and_no_ply(tmp_path, capsys):
    bad = _write(tmp_path / "bad.omg", b"not an avatar")
    ply = tmp_path / "bad.ply"
    assert main(["export", str(bad), "-o", str(ply)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["omg-avatar: error: bad.omg is not an omg-avatar file (not an npz archive)"]
    assert not ply.exists()


@pytest.mark.samples
def test_export_of_a_missing_lod_is_one_line_error_and_no_ply(reconstructed, tmp_path, capsys):
    ply = tmp_path / "lod9.ply"
    assert main(["export", str(reconstructed[0]), "--lod", "9", "-o", str(ply)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["omg-avatar: error: LOD 9 does not exist: this avatar has LODs 0 to 2"]
    assert not ply.exists()


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path
