"""``omg-avatar eval`` on a short sample clip: the JSON contract, the contact sheet, one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.cli import main
from core.cli.eval import METRICS
from core.evaluation.reenactment import SHEET_CELL, SHEET_ROWS_PER_SEQUENCE, EvenSample
from core.evaluation.views import VIEW_COLUMNS
from core.media import SHEET_GAP, AtomicMp4Writer, contact_sheet
from lpips_stand_in import write_stand_in_lpips

OMG_AVATAR = Path(sys.executable).parent / "omg-avatar"
FRAMES = 6  # the source frame and five driven frames


@pytest.fixture(scope="module")
def evaluation(samples_dir, tmp_path_factory) -> dict:
    """One eval run on the first frames of a sample clip: its process result, JSON and sheet."""
    folder = tmp_path_factory.mktemp("eval")
    lpips = write_stand_in_lpips(folder / "lpips.safetensors")
    report, sheet, views = folder / "scores.json", folder / "sheet.png", folder / "views.png"
    started = time.perf_counter()
    result = subprocess.run(
        [str(OMG_AVATAR), "eval", str(samples_dir / "videos" / "talking_d0.mp4"), "--max-frames", str(FRAMES),
         "--json", str(report), "--per-frame", "--contact-sheet", str(sheet), "--lpips", str(lpips),
         "--views-sheet", str(views)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    run_s = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    return {"result": result, "report": json.loads(report.read_text()), "sheet": sheet, "views": views, "run_s": run_s}


def test_eval_json_has_the_contract_keys_with_plausible_scores(evaluation):
    report = evaluation["report"]
    assert set(report["videos"]) == {"talking_d0.mp4"}
    video = report["videos"]["talking_d0.mp4"]
    measured = [key for key in METRICS if key != "aed"]  # AED needs a FLAME file, absent here
    for entry in (video, report["mean"]):
        assert set(METRICS) <= set(entry) and entry["aed"] is None
        assert all(isinstance(entry[key], float) and math.isfinite(entry[key]) for key in measured)
    assert report["mode"] == "self-reenactment" and set(report["unavailable"]) == {"aed"}
    assert "FLAME" in report["unavailable"]["aed"]
    assert video["frames"] == FRAMES - 1 and video["landmark_frames"] == FRAMES - 1
    assert 15.0 < video["psnr"] < 40.0 and 0.5 < video["ssim"] < 1.0
    assert 0.0 < video["akd"] < 10.0 and 0.0 <= video["apd"] < 10.0
    assert video["frames"] / evaluation["run_s"] <= video["fps"]  # the frames were driven during the run
    assert video["lpips"] > 0.0
    assert report["mean"]["psnr"] == video["psnr"]  # one video: the mean is its scores


def test_eval_per_frame_scores_are_the_frames_the_means_average(evaluation):
    video = evaluation["report"]["videos"]["talking_d0.mp4"]
    per_frame = video["per_frame"]
    assert [entry["frame"] for entry in per_frame] == list(range(1, FRAMES))  # the source frame is not scored
    for key in ("psnr", "ssim", "akd"):
        assert math.isclose(float(np.mean([entry[key] for entry in per_frame])), video[key], rel_tol=1e-9)
    assert len({entry["psnr"] for entry in per_frame}) > 1  # each frame's own score, not the mean repeated


def test_per_frame_without_a_json_report_is_a_one_line_error(samples_dir, capsys):
    video = samples_dir / "videos" / "talking_d0.mp4"
    assert main(["eval", str(video), "--max-frames", "2", "--per-frame"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--json" in lines[0]


def test_eval_prints_progress_and_the_table(evaluation):
    result = evaluation["result"]
    assert "avatar reconstructed from the first frame of talking_d0.mp4" in result.stderr
    table = result.stdout.splitlines()
    assert table[1].split() == ["video", *(key.upper() for key in METRICS)]
    assert table[-2].split()[0] == "mean" and table[-1].startswith("AED unavailable: needs a FLAME model")


def test_eval_views_sheet_shows_every_lod_from_five_yaws_beside_the_source(evaluation):
    sheet = cv2.imread(str(evaluation["views"]))
    rows, columns = 3, len(VIEW_COLUMNS)  # a training-free avatar has Sub#0..2
    assert sheet.shape[1] == columns * SHEET_CELL + (columns - 1) * SHEET_GAP
    label_band = sheet.shape[0] - rows * (SHEET_CELL + SHEET_GAP)
    assert 0 < label_band < SHEET_CELL
    for row in range(rows):
        top = label_band + SHEET_GAP + row * (SHEET_CELL + SHEET_GAP)
        cells = [sheet[top : top + SHEET_CELL, k * (SHEET_CELL + SHEET_GAP) :][:, :SHEET_CELL].astype(float)
                 for k in range(columns)]  # fmt: skip
        left, front, right = cells[1], cells[3], cells[5]  # yaw -45, 0, +45
        assert all((cell.max(axis=2) > 30).mean() > 0.1 for cell in cells[1:])  # the avatar is in every view
        assert np.abs(left - front).mean() > 5 and np.abs(right - front).mean() > 5 and np.abs(left - right).mean() > 5


def test_eval_contact_sheet_has_rows_of_source_target_and_render(evaluation):
    sheet = cv2.imread(str(evaluation["sheet"]))
    rows, columns = SHEET_ROWS_PER_SEQUENCE, 3
    assert sheet.shape[1] == columns * SHEET_CELL + (columns - 1) * SHEET_GAP
    label_band = sheet.shape[0] - rows * SHEET_CELL - rows * SHEET_GAP
    assert 0 < label_band < SHEET_CELL
    first_row = sheet[label_band + SHEET_GAP : label_band + SHEET_GAP + SHEET_CELL]
    source, target, render = (first_row[:, k * (SHEET_CELL + SHEET_GAP) :][:, :SHEET_CELL] for k in range(3))
    assert np.abs(source.astype(float) - target).mean() > 5  # green screen vs removed background
    assert np.abs(render.astype(float) - target).mean() < 40  # the render resembles its target


def test_lpips_is_null_without_a_model_file(samples_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMG_AVATAR_MODELS", str(tmp_path))
    report = tmp_path / "scores.json"
    video = samples_dir / "videos" / "talking_d0.mp4"
    assert main(["eval", str(video), "--max-frames", "2", "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["mean"]["lpips"] is None and scores["videos"]["talking_d0.mp4"]["lpips"] is None
    assert "LPIPS unavailable" in capsys.readouterr().out


def _clip(path: Path, frames: list[np.ndarray]) -> Path:
    with AtomicMp4Writer(path, 25.0, frames[0].shape[1], frames[0].shape[0]) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _first_frame(video: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _frames(video: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``video``, [H, W, 3] uint8 RGB."""
    capture = cv2.VideoCapture(str(video))
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(count)]
    capture.release()
    return frames


def test_wide_and_4k_videos_are_scored(samples_dir, tmp_path):
    """The tracker crops every frame with the source photo's box: wide and 3840x2160 frames,
    where the photo path detects on a downscaled copy, score like square ones."""
    wide = samples_dir / "videos" / "talking_busy_background.mp4"  # 1280x720
    uhd = _clip(tmp_path / "uhd.mp4", [cv2.resize(frame, (3840, 2160), interpolation=cv2.INTER_CUBIC)
                                       for frame in _frames(wide, 4)])  # fmt: skip
    for video, frames in ((wide, 10), (uhd, 4)):
        report = tmp_path / f"{video.stem}.json"
        assert main(["eval", str(video), "--max-frames", str(frames), "--json", str(report)]) == 0
        scores = json.loads(report.read_text())["videos"][video.name]
        assert scores["frames"] == frames - 1 and scores["landmark_frames"] == frames - 1
        assert 18.0 < scores["psnr"] < 40.0 and 0.7 < scores["ssim"] < 1.0
        assert 0.0 < scores["akd"] < 5.0 and 0.0 <= scores["apd"] < 5.0


def test_bad_videos_are_one_line_errors_and_write_nothing(samples_dir, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("plain text, not a video")
    face = _first_frame(samples_dir / "videos" / "talking_d0.mp4")
    faceless = _clip(tmp_path / "faceless.mp4", [np.full_like(face, 128), face])
    single = _clip(tmp_path / "single.mp4", [face])
    report, sheet = tmp_path / "out" / "scores.json", tmp_path / "out" / "sheet.png"
    expected = {
        text: "cannot open notes.mp4",
        faceless: "no face found in the first frame of faceless.mp4",
        single: "single.mp4 has only one frame",
        tmp_path / "absent.mp4": "video file not found",
    }
    for video, message in expected.items():
        code = main(["eval", str(video), "--json", str(report), "--contact-sheet", str(sheet)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and lines[-1].startswith("omg-avatar: error: ") and message in lines[-1]
        assert not [line for line in lines if "Traceback" in line]
        assert not report.parent.exists()


def test_a_missing_lpips_file_is_a_one_line_error(samples_dir, tmp_path, capsys):
    video = samples_dir / "videos" / "talking_d0.mp4"
    assert main(["eval", str(video), "--lpips", str(tmp_path / "lpips.safetensors")]) == 2
    assert capsys.readouterr().err.strip() == f"omg-avatar: error: LPIPS weights not found: {tmp_path / 'lpips.safetensors'}"


def test_even_sample_spreads_its_picks_over_a_stream_of_unknown_length():
    sample = EvenSample(3)
    for index in range(1, 101):
        if sample.wants(index):
            sample.add(index, index)
    picked = sample.picked()
    assert len(picked) == 3 and picked == sorted(picked)
    assert picked[0] <= 10 and 40 <= picked[1] <= 60 and picked[2] >= 90
    short = EvenSample(3)
    for index in (1, 2):
        short.add(index, index)
    assert short.picked() == [1, 2]


def test_contact_sheet_lays_out_rows_under_column_labels():
    red, green = np.zeros((100, 100, 3), np.uint8), np.zeros((50, 50, 3), np.uint8)
    red[..., 0], green[..., 1] = 255, 255
    sheet = contact_sheet([[red, green], [green, red]], ("a", "b"), cell=40)
    band = sheet.shape[0] - 2 * 40 - 2 * SHEET_GAP
    assert sheet.shape == (band + 2 * (40 + SHEET_GAP), 2 * 40 + SHEET_GAP, 3)
    top_left = sheet[band + SHEET_GAP + 20, 20]
    bottom_right = sheet[-20, -20]
    assert tuple(top_left) == (255, 0, 0) and tuple(bottom_right) == (255, 0, 0)
    with pytest.raises(ValueError):
        contact_sheet([[red]], ("a", "b"))
