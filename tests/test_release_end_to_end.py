"""Issue 14's acceptance path on the release's file formats, end to end through the command line:
a checkpoint in the release's layout (``{"model", "meta_cfg"}``, recipe weights, a full ViT-B)
with a FLAME bundle, ``reconstruct --method network``, then ``drive`` at every level of detail
with and without the refiner, to the end of a video.

Two sizes: the parity fixture's configuration with its synthetic FLAME (645 vertices; its landmark
embedding is random, so the FLAME fits are poor but must still run), and the paper's (the real
manifest's keys, on a 5,023-vertex synthetic FLAME in the release's layout). The weights are not
trained: these tests prove the paths and the formats, not the pictures. Slow (about two minutes);
the timings they print are this machine's.
"""

from __future__ import annotations

import contextlib
import io
import re

import cv2
import pytest
from official_parity import parity_folder, write_release_checkpoint

from core.avatar import load_avatar
from core.cli import main
from network_files import frontal_face_landmarks, write_release_flame_bundle
from core.config import load_config

pytestmark = [pytest.mark.samples, pytest.mark.slow]

CLIP_FRAMES = 9  # one more than the FLAME fitting's calibration frames
#: Keys of the paper-size manifest left out of its checkpoint: the perceptual loss (training only)
#: and FLAME's buffers (the synthetic FLAME has other face counts than FLAME's; they come from the
#: FLAME file anyway).
PAPER_LEFT_OUT = ("percep_loss.", "flame_model.", "subdivider.")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(item) for item in argv])
    return status, out.getvalue(), err.getvalue()


def reconstructed(photo, checkpoint, flame, output) -> float:
    """``reconstruct --method network``; returns its seconds."""
    status, out, err = run_cli(["reconstruct", photo, "--method", "network", "--checkpoint", checkpoint,
                                "--flame", flame, "-o", output])  # fmt: skip
    assert status == 0, err
    seconds = float(re.search(r"seconds:\s+([\d.]+)", out).group(1))
    print(f"\nreconstruct ({checkpoint.name}, {flame.name}): {seconds:.1f} s")
    return seconds


def frames_of(video) -> list:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    return frames


@pytest.fixture(scope="module")
def clip(samples_dir, tmp_path_factory):
    """The first :data:`CLIP_FRAMES` frames of a talking-head sample."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = frames_of(samples_dir / "videos" / "talking_d0.mp4")[:CLIP_FRAMES]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def fixture_avatar(samples_dir, tmp_path_factory):
    """(avatar file, FLAME file) of the fixture's configuration on its synthetic FLAME."""
    folder = tmp_path_factory.mktemp("release")
    checkpoint = write_release_checkpoint(parity_folder(), folder / "omg_ckpt.pt")
    flame = parity_folder() / "synthetic_flame" / "FLAME_with_eye.pt"
    avatar = folder / "fixture.omg"
    reconstructed(samples_dir / "photos" / "einstein.jpg", checkpoint, flame, avatar)
    checkpoint.unlink()
    return avatar, flame


def test_the_fixture_avatar_has_the_releases_levels_refiner_and_rig(fixture_avatar):
    avatar = load_avatar(fixture_avatar[0])
    assert avatar.method == "network" and avatar.levels.num_vertices == (645, 2537, 10077)
    assert len(avatar.shoulders) > 10_000 and avatar.num_channels == 32
    assert avatar.refiner.image_size == 512 and avatar.source_camera.width == 512
    assert avatar.flame.offsets.shape == (645, 3) and len(avatar.flame.shape) == 300


@pytest.mark.parametrize("refiner", [True, False], ids=["refiner", "no-refiner"])
@pytest.mark.parametrize("lod", [0, 1, 2])
def test_the_fixture_avatar_drives_to_the_end_of_a_video(fixture_avatar, clip, tmp_path, lod, refiner):
    avatar, flame = fixture_avatar
    output = tmp_path / "driven.mp4"
    status, out, err = run_cli(["drive", avatar, "--video", clip, "--lod", lod, "-o", output, "--flame", flame,
                                *([] if refiner else ["--no-refiner"])])  # fmt: skip
    assert status == 0, err
    assert "(the video ended)" in out and f"refiner {'on' if refiner else 'off'}" in out
    assert "expressions FLAME fit per frame" in out
    frames = frames_of(output)
    assert len(frames) == CLIP_FRAMES and frames[0].shape == (512, 512, 3)
    print(f"\nSub#{lod} refiner {'on' if refiner else 'off'}: " + out.split("ms per frame:")[1].strip())


def test_the_paper_sized_network_reconstructs_and_drives_at_sub2_with_its_refiner(
    samples_dir, clip, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("paper")
    landmarks = frontal_face_landmarks(samples_dir, load_config())
    flame = write_release_flame_bundle(folder / "flame", landmarks, vertices=5023)
    checkpoint = write_release_checkpoint(parity_folder(), folder / "omg_ckpt.pt", "real", PAPER_LEFT_OUT)
    avatar_file = folder / "paper.omg"
    reconstructed(samples_dir / "photos" / "einstein.jpg", checkpoint, flame, avatar_file)
    checkpoint.unlink()
    avatar = load_avatar(avatar_file)
    vertices = avatar.levels.num_vertices
    assert vertices[0] == 5023 and vertices[2] > 75_000  # FLAME's levels: 5,023 / 20,018 / 79,936
    status, out, err = run_cli(["drive", avatar_file, "--video", clip, "--lod", 2, "--max-frames", 3,
                                "--flame", flame, "-o", folder / "paper.mp4"])  # fmt: skip
    assert status == 0, err
    assert len(frames_of(folder / "paper.mp4")) == 3
    print("\npaper Sub#2 refiner on: " + out.split("ms per frame:")[1].strip())
