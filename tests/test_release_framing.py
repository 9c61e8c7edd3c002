"""The release's framing of a source photo: FLAME fitted in our crop, the photo re-cropped so that
FLAME's origin sits on the optical axis at the release's distance, and fitted again."""

from __future__ import annotations

import numpy as np
import pytest

from core.avatar.flame_rig import fitting_layer, release_fitting_config
from core.config import load_config
from core.geometry.camera import Camera
from core.tracking.crop import CropBox
from core.tracking.flame_tracking import fit_photo
from core.tracking.photo import prepare_portrait
from core.tracking.release_framing import HEAD_DISTANCE, ZOOM_RANGE, release_box, release_framed
from network_files import frontal_face_landmarks, write_release_flame_bundle

CONFIG = load_config("paper")
SIZE = 512


def crop_camera(origin: tuple[float, float, float]) -> Camera:
    """A frontal crop camera (focal 12) that sees FLAME's origin at ``origin`` (camera space)."""
    return Camera(Camera.intrinsics(SIZE, SIZE, 12.0), np.diag([1.0, -1.0, -1.0]), np.array(origin), SIZE, SIZE)


def test_the_box_is_centred_on_the_projected_origin_and_zoomed_to_the_releases_distance():
    box = CropBox(100, 50, 1024, SIZE)  # 2 source pixels per crop pixel
    camera = crop_camera((0.3, -0.2, 8.4))
    framed = release_box(box, camera)
    origin_in_crop, _ = camera.project(np.zeros((1, 3)))
    centre_in_source = box.to_source(origin_in_crop)[0]
    assert framed.size == SIZE and framed.side == round(1024 * HEAD_DISTANCE / 8.4)
    np.testing.assert_allclose([framed.x0 + framed.side / 2, framed.y0 + framed.side / 2], centre_in_source, atol=1.0)


@pytest.mark.parametrize(("depth", "zoom"), [(2.0, ZOOM_RANGE[1]), (40.0, ZOOM_RANGE[0])])
def test_a_depth_far_from_the_releases_keeps_a_framing_close_to_ours(depth, zoom):
    framed = release_box(CropBox(0, 0, 600, SIZE), crop_camera((0.0, 0.0, depth)))
    assert framed.side == round(600 * zoom)


@pytest.mark.samples
def test_a_fitted_photo_is_reframed_to_the_releases_head_distance(samples_dir, tmp_path):
    flame = write_release_flame_bundle(tmp_path, frontal_face_landmarks(samples_dir, CONFIG))
    layer, config = fitting_layer(flame, CONFIG), release_fitting_config(CONFIG)
    portrait = prepare_portrait(samples_dir / "photos" / "einstein.jpg", CONFIG.tracking)
    _, before = fit_photo(layer, config, portrait.crop.landmarks, SIZE)
    framed = release_framed(portrait, before)
    _, after = fit_photo(layer, config, framed.crop.landmarks, SIZE)
    assert abs(before.t[2] - HEAD_DISTANCE) > 0.4  # our framing is tighter than the release's
    assert abs(after.t[2] - HEAD_DISTANCE) < 0.3 and np.abs(after.t[:2]).max() < 0.1
    assert framed.mask.shape == (SIZE, SIZE) and framed.mask.mean() > 0.1  # segmented anew
    assert framed.crop.box.side > portrait.crop.box.side
