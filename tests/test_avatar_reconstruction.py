"""The training-free reconstruction on the sample portraits: speed, fidelity to the photo,
closed heads from the side, the paper's Gaussian counts, progress and cancellation."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from core.avatar import ReconstructionCancelled, UnknownMethodError, available_methods, reconstruct
from core.avatar.training_free.face_topology import face_topology
from core.config import load_config
from core.errors import NoFaceError
from core.render import mesh_depth, render
from core.tracking.photo import prepare_portrait
from timing import typical_seconds_each

CONFIG = load_config("paper")
PHOTOS = ("einstein", "mona_lisa", "woman_pearls", "man_bw_2048", "child_photo_of_photo")
#: The issue's acceptance numbers.
MAX_SECONDS = 1.0
MIN_FACE_PSNR = 26.0
MIN_COVERAGE = 0.95
#: Silhouette pixels this close to the edge are left out of the coverage (Gaussians fade there).
EDGE_PX = 2


@pytest.fixture(scope="module")
def reconstructions(samples_dir):
    """name -> (portrait, avatar)."""
    results = {}
    for name in PHOTOS:
        portrait = prepare_portrait(samples_dir / "photos" / f"{name}.jpg", CONFIG.tracking)
        results[name] = (portrait, reconstruct(portrait, config=CONFIG))
    return results


@pytest.fixture(scope="module")
def reconstruction_seconds(samples_dir) -> dict[str, float]:
    """name -> typical seconds of photo preparation plus reconstruction, in a fresh interpreter."""
    setup = f"""
        from pathlib import Path
        from core.avatar import reconstruct
        from core.config import load_config
        from core.tracking.photo import prepare_portrait
        config = load_config("paper")
        photos = Path({str(samples_dir / "photos")!r})
        """
    statements = [f"reconstruct(prepare_portrait(photos / '{name}.jpg', config.tracking), config=config)"
                  for name in PHOTOS]  # fmt: skip
    return dict(zip(PHOTOS, typical_seconds_each(setup, statements, rounds=2, repeats=1)))


def _face_region(portrait) -> np.ndarray:
    """[S, S] bool: inside the face oval of the photo's landmarks."""
    size = portrait.crop.image.shape[0]
    region = np.zeros((size, size), np.uint8)
    cv2.fillPoly(region, [np.round(portrait.crop.landmarks[face_topology().oval, :2]).astype(np.int32)], 1)
    return region.astype(bool)


@pytest.mark.samples
@pytest.mark.parametrize("name", PHOTOS)
def test_reconstruction_takes_at_most_a_second(reconstruction_seconds, name):
    seconds = reconstruction_seconds[name]
    print(f"\n{name}: {seconds:.2f} s (photo preparation and reconstruction)")
    assert seconds <= MAX_SECONDS


@pytest.mark.samples
def test_a_photo_without_a_human_face_is_refused(samples_dir):
    with pytest.raises(NoFaceError, match="dog_no_human_face.jpg"):
        prepare_portrait(samples_dir / "photos" / "dog_no_human_face.jpg", CONFIG.tracking)


@pytest.mark.samples
@pytest.mark.parametrize("name", PHOTOS)
def test_source_view_reproduces_the_photo_in_the_face(reconstructions, name):
    portrait, avatar = reconstructions[name]
    photo = portrait.crop.image.astype(np.float32) / 255.0
    face = _face_region(portrait)
    psnr = []
    for lod in range(avatar.num_lods):
        image = render(avatar.gaussians(lod), avatar.camera(), backend="cpu").features.numpy()
        psnr.append(10.0 * np.log10(1.0 / np.mean((image[face] - photo[face]) ** 2)))
    print(f"\n{name}: face PSNR per LOD " + ", ".join(f"{value:.2f}" for value in psnr))
    assert psnr[-1] >= MIN_FACE_PSNR
    assert psnr == sorted(psnr)  # finer levels reproduce the photo better


@pytest.mark.samples
@pytest.mark.parametrize("name", PHOTOS)
def test_turned_head_has_no_holes(reconstructions, name):
    """At +-45 degrees of yaw the head's Gaussians cover its projected silhouette."""
    _, avatar = reconstructions[name]
    for lod in range(avatar.num_lods):
        head = avatar.gaussians(lod).select(slice(0, len(avatar.lods[lod])))
        faces = avatar.levels.faces[avatar.first_level + lod]
        for yaw in (-45.0, 45.0):
            camera = avatar.camera(yaw)
            silhouette = np.isfinite(mesh_depth(avatar.head_means(lod).numpy(), faces, camera))
            inner = cv2.erode(silhouette.astype(np.uint8), np.ones((2 * EDGE_PX + 1,) * 2, np.uint8)) > 0
            alpha = render(head, camera, backend="cpu").alpha.numpy()
            coverage = float((alpha[inner] >= 0.5).mean())
            assert coverage >= MIN_COVERAGE, f"LOD {lod}, yaw {yaw}: coverage {coverage:.3f}"


@pytest.mark.samples
def test_levels_of_detail_have_the_papers_counts(reconstructions):
    counts = {name: [len(head) for head in avatar.lods] for name, (_, avatar) in reconstructions.items()}
    first = counts[PHOTOS[0]]
    assert all(value == first for value in counts.values())  # one topology for every photo
    for count, paper in zip(first, CONFIG.lod.head_gaussians):
        assert abs(count - paper) <= 0.05 * paper
    for _, avatar in reconstructions.values():
        assert 0.5 * CONFIG.lod.shoulder_gaussians <= len(avatar.shoulders) <= 2.0 * CONFIG.lod.shoulder_gaussians


@pytest.mark.samples
def test_provenance_names_the_photo_and_method(reconstructions):
    portrait, avatar = reconstructions["einstein"]
    assert avatar.method == "training-free"
    assert avatar.provenance["photo"] == "einstein.jpg"
    assert len(avatar.provenance["photo_sha256"]) == 64
    assert avatar.provenance["config"] == "paper"
    assert avatar.provenance["versions"]["omg-avatar"]


@pytest.mark.samples
def test_progress_rises_to_one_and_cancel_stops(reconstructions):
    portrait = reconstructions["einstein"][0]
    reports = []
    reconstruct(portrait, config=CONFIG, progress=lambda fraction, message: reports.append((fraction, message)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    assert all(message for _, message in reports)

    cancel = threading.Event()

    def cancel_after_first(fraction, message):
        cancel.set()

    with pytest.raises(ReconstructionCancelled):
        reconstruct(portrait, config=CONFIG, progress=cancel_after_first, cancel=cancel)


def test_methods_are_listed_and_unknown_ones_refused():
    assert available_methods()[0] == "training-free"
    with pytest.raises(UnknownMethodError, match="training-free"):
        reconstruct(None, method="no-such-method")
