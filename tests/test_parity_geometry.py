"""The release's geometry path (FLAME, subdivision, projection, depth maps, occlusion, masks,
plane sampling, shoulder plane) against the official parity fixture, stage by stage.

Each stage starts from the fixture's own input to that stage, so a difference shows where it
arises; ``test_the_whole_path_from_flame_coefficients`` then chains our stages from the FLAME
coefficients. Runs unchanged on any fixture folder of the same layout (``$OMG_PARITY_FIXTURE``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.flame.bundle import NECK_MASKS, load_flame_masks, load_template_faces
from core.flame.release import load_release_flame
from core.geometry.camera import Camera
from core.geometry.release_camera import camera_from_release, project_release, release_from_camera
from core.geometry.release_subdivision import ReleaseSubdivision
from core.model.occlusion import faces_without_vertices, normalized_depth, occluded_vertices, plane_mask
from core.model.projection import sample_plane
from core.model.release_geometry import FlamePose, ReleaseGeometry
from core.model.shoulder_plane import shoulder_plane
from core.render.release_zbuffer import rasterize_depth, release_zbuffer
from official_parity import ParityFixture, assert_close_to_scale

LEVELS = (0, 1, 2)
MASK_AGREEMENT = 0.99  # the criterion for occlusion masks


@pytest.fixture(scope="module")
def fixture() -> ParityFixture:
    return ParityFixture.load()


@pytest.fixture(scope="module")
def flame(fixture):
    return load_release_flame(fixture.flame_folder / "FLAME_with_eye.pt")


@pytest.fixture(scope="module")
def template_faces(fixture, flame) -> np.ndarray:
    return load_template_faces(fixture.flame_folder / "head_template_mesh.obj", flame.num_vertices)


@pytest.fixture(scope="module")
def neck_vertices(fixture, flame) -> np.ndarray:
    masks = load_flame_masks(fixture.flame_folder / "FLAME_masks.pkl", n_vertices=flame.num_vertices)
    return np.concatenate([masks[name] for name in NECK_MASKS])


@pytest.fixture(scope="module")
def subdivision(template_faces, flame) -> ReleaseSubdivision:
    return ReleaseSubdivision(template_faces, flame.num_vertices, levels=2)


def _pose(fixture: ParityFixture, prefix: str) -> FlamePose:
    t = fixture.tensors
    return FlamePose(t["in.f_shape"], t[f"in.{prefix}_exp"], t[f"in.{prefix}_pose"], t[f"in.{prefix}_eye"])


def _depth_name(fixture: ParityFixture, level: int) -> str:
    """The stored depth map of ``level`` (the fixture keeps L1's only as L2's: they are equal)."""
    return f"L{level}.f_z_buffer" if fixture.has(f"L{level}.f_z_buffer") else "L2.f_z_buffer"


def _report(name: str, computed: torch.Tensor, stored: torch.Tensor) -> None:
    error = float((computed.double() - stored.double()).abs().max())
    print(f"\n{name}: max error {error:.3g} (scale {float(stored.abs().max()):.3g})", end="")


# --------------------------------------------------------------------------- the bundle
def test_the_bundle_gives_the_fixture_topology(fixture, flame, template_faces, neck_vertices):
    counts = fixture.info["mesh_counts"]
    assert flame.num_vertices == counts["V0"] and (flame.n_shape, flame.n_expression) == (300, 100)
    assert template_faces.shape == (counts["F0"], 3)
    assert len(neck_vertices) > 0 and neck_vertices.max() < counts["V0"]


# --------------------------------------------------------------------------- FLAME
def test_flame_source_and_target_points(fixture, flame):
    t = fixture.tensors
    source = flame(t["in.f_shape"], t["in.f_exp"], t["in.f_pose"], t["in.f_eye"])
    target = flame(t["in.f_shape"], t["in.t_exp"], t["in.t_pose"], t["in.t_eye"], t["v_offset"])
    for name, computed in (("flame.f_points", source), ("flame.t_points", target)):
        _report(name, computed, t[name])
        assert_close_to_scale(computed, t[name], name)


# --------------------------------------------------------------------------- subdivision
@pytest.mark.parametrize("level", LEVELS)
def test_subdivided_points_and_features(fixture, subdivision, level):
    t = fixture.tensors
    assert subdivision.num_vertices[level] == fixture.info["mesh_counts"][f"V{level}"]
    for name, base in ((f"L{level}.f_sub_points", "flame.f_points"), (f"L{level}.t_sub_points", "flame.t_points")):
        computed = subdivision.refine(t[base], level)
        _report(name, computed, t[name])
        assert_close_to_scale(computed, t[name], name)
    if level > 0:
        name = f"L{level}.feature_volume_sub"
        stored, computed = fixture.expected(name, subdivision.refine(t["tf.out"], level))
        _report(name, computed, stored)
        assert_close_to_scale(computed, stored, name)


def test_every_level_above_0_carries_the_level_1_faces(fixture, subdivision):
    counts = fixture.info["mesh_counts"]
    assert subdivision.faces(0).shape == (counts["F0"], 3)
    assert subdivision.faces(1).shape == subdivision.faces(2).shape == (counts["F1"], 3)
    assert subdivision.faces(2).max() < counts["V1"]


# --------------------------------------------------------------------------- projection
@pytest.mark.parametrize("level", LEVELS)
def test_projection_of_the_source_vertices(fixture, level):
    t = fixture.tensors
    n_coords, ndc = project_release(t[f"L{level}.f_sub_points"], t["in.f_transform"])
    for name, computed in ((f"L{level}.n_coords", n_coords), (f"L{level}.ndc", ndc)):
        _report(name, computed, t[name])
        assert_close_to_scale(computed, t[name], name)


def test_release_camera_and_opencv_camera_project_alike(fixture):
    t = fixture.tensors
    points = t["L2.f_sub_points"]
    for transform in (t["in.f_transform"], t["in.t_transform"]):
        camera = camera_from_release(transform[0])
        uv, depth = camera.project(points[0].double().numpy())
        n_coords, ndc = project_release(points, transform)
        inside = (ndc[0, :, :2].abs() < 1).all(dim=1).numpy()
        assert inside.mean() > 0.9 and (depth > 0).all()
        np.testing.assert_allclose(uv[inside] / 512, n_coords[0].double().numpy()[inside], atol=1e-6)
        np.testing.assert_allclose(release_from_camera(camera), transform[0].double().numpy(), atol=1e-7)


def test_opencv_cameras_convert_to_release_cameras_and_back():
    camera = Camera.orbit((0.0, 0.1, 0.0), 25.0, -10.0, 10.0, 512, 512, 12.0)
    transform = torch.as_tensor(release_from_camera(camera), dtype=torch.float64)[None]
    points = torch.randn(1, 50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    uv, _ = camera.project(points[0].numpy())
    n_coords, _ = project_release(points, transform)
    np.testing.assert_allclose(n_coords[0].numpy(), np.clip(uv / 512, 0, 1), atol=1e-9)
    back = camera_from_release(transform[0])
    np.testing.assert_allclose(back.R, camera.R, atol=1e-12)
    np.testing.assert_allclose(back.t, camera.t, atol=1e-12)
    np.testing.assert_allclose(back.K, camera.K)
    shifted = camera.K.copy()
    shifted[0, 2] += 5.0  # principal point off the centre
    for other in (Camera(shifted, camera.R, camera.t, 512, 512), camera.resized(512, 384)):
        with pytest.raises(ValueError, match="square and centred"):
            release_from_camera(other)


# --------------------------------------------------------------------------- depth and occlusion
@pytest.fixture(scope="module")
def depth_maps(fixture, subdivision) -> dict[int, torch.Tensor]:
    t = fixture.tensors
    return {
        level: normalized_depth(
            release_zbuffer(t[f"L{level}.f_sub_points"], torch.as_tensor(subdivision.faces(level)), t["in.f_transform"])
        )
        for level in LEVELS
    }


@pytest.mark.parametrize("level", LEVELS)
def test_depth_map_of_the_source_mesh(fixture, depth_maps, level):
    name = _depth_name(fixture, level)
    stored, computed = fixture.tensors[name], depth_maps[level]
    differing = int((computed != stored).sum())
    coverage = int(((computed < 1) != (stored < 1)).sum())
    print(f"\nL{level} depth map vs {name}: {differing} pixels differ, {coverage} differ in coverage", end="")
    _report(name, computed, stored)
    assert_close_to_scale(computed, stored, name)


def test_rasterizer_rules_on_a_4x4_image():
    """pytorch3d's rules: pixel centres at NDC +-0.25, +-0.75 (+x left, +y up); a centre on an
    edge is not covered; the nearest face wins; faces behind the camera are skipped; -1 empty."""
    triangle = torch.tensor([[0.75, 0.75], [0.75, -0.75], [-0.75, 0.75]])  # edges through 5 centres
    near = torch.cat([triangle, torch.full((3, 1), 2.0)], dim=1)
    far = torch.cat([triangle, torch.full((3, 1), 3.0)], dim=1)
    behind = torch.cat([-triangle, torch.tensor([[1.0], [1.0], [-1.0]])], dim=1)
    depth = rasterize_depth(torch.stack([far, near, behind]), 4, 4)
    expected = torch.full((4, 4), -1.0)
    expected[1, 1] = 2.0  # the only centre strictly inside: NDC (0.25, 0.25)
    torch.testing.assert_close(depth, expected, atol=1e-6, rtol=0)
    assert torch.equal(rasterize_depth(torch.empty(0, 3, 3), 4, 4), torch.full((4, 4), -1.0))


def test_the_level_2_depth_map_is_the_level_1_one(depth_maps):
    assert torch.equal(depth_maps[1], depth_maps[2])


@pytest.mark.parametrize("level", LEVELS)
def test_occluded_vertices(fixture, depth_maps, level):
    t = fixture.tensors
    _, ndc = project_release(t[f"L{level}.f_sub_points"], t["in.f_transform"])
    stored_ndc = ndc.clone()
    occluded = occluded_vertices(ndc, depth_maps[level])
    assert torch.equal(ndc, stored_ndc)  # unlike the release, ours leaves the NDC alone
    stored = t[f"L{level}.occluded_vertices_mask"].bool()
    agreement = float((occluded == stored).float().mean())
    print(f"\nL{level}.occluded_vertices_mask: {int((occluded != stored).sum())} of {stored.numel()} vertices "
          f"differ, agreement {agreement:.4%} ({int(stored.sum())} occluded)", end="")  # fmt: skip
    assert occluded.shape == stored.shape and agreement >= MASK_AGREEMENT


@pytest.mark.parametrize("level", LEVELS)
def test_plane_mask(fixture, depth_maps, level):
    name = f"L{level}.cloth_mask_4dino"
    computed = plane_mask(depth_maps[level])
    _report(name, computed, fixture.tensors[name])
    assert_close_to_scale(computed, fixture.tensors[name], name)


@pytest.mark.parametrize("which", ["f", "t"])
def test_face_only_depth_maps(fixture, template_faces, neck_vertices, which):
    t = fixture.tensors
    faces = faces_without_vertices(template_faces, neck_vertices)
    assert 0 < len(faces) < len(template_faces)
    computed = normalized_depth(
        release_zbuffer(t[f"flame.{which}_points"], torch.as_tensor(faces), t[f"in.{which}_transform"])
    )
    name = f"zbuf.{which}_face"
    print(f"\n{name}: {int((computed != t[name]).sum())} pixels differ", end="")
    _report(name, computed, t[name])
    assert_close_to_scale(computed, t[name], name)


# --------------------------------------------------------------------------- plane sampling
@pytest.mark.parametrize("level", LEVELS)
def test_plane_sampling_through_the_channel_mean(fixture, level):
    """The fixture keeps the DPT plane only reduced, but keeps its channel mean whole: sampling
    is linear over channels, so sampling the mean plane gives the mean of the samples."""
    t = fixture.tensors
    name = f"L{level}.f_feature_sampling"
    if not fixture.has("dino.f_feature1.chmean") or not fixture.has(name):
        pytest.skip("the fixture lacks the plane's channel mean or the sampled features")
    mean_plane = t["dino.f_feature1.chmean"][:, None]  # [B, 1, S, S]
    computed = sample_plane(mean_plane, t[f"L{level}.n_coords"])  # [B, V, 1]
    stored, computed = fixture.expected(name, computed)
    stored = stored.mean(dim=-1, keepdim=True)
    _report(f"{name} (channel mean)", computed, stored)
    assert_close_to_scale(computed, stored, name)


def test_plane_sampling_on_a_synthetic_plane():
    """On a plane linear in the pixel indices bilinear sampling is exact: sample = the linear
    function at ``clamp(n * S, 0, S - 1)``."""
    size = 296
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                                indexing="ij")  # fmt: skip
    plane = torch.stack([cols, rows, 2 * cols - 3 * rows + 7])[None]  # [1, 3, S, S]
    n_coords = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.5, 0.25], [-0.2, 1.3], [0.9981, 0.0017]]], dtype=torch.float64)
    sampled = sample_plane(plane, n_coords)
    coords = (n_coords[0] * size).clamp(0, size - 1)
    expected = torch.stack([coords[:, 0], coords[:, 1], 2 * coords[:, 0] - 3 * coords[:, 1] + 7], dim=1)
    torch.testing.assert_close(sampled[0], expected, atol=1e-9, rtol=0)


# --------------------------------------------------------------------------- shoulder plane
def test_shoulder_plane_from_the_source_camera(fixture):
    t = fixture.tensors
    points, direction = shoulder_plane(t["in.f_transform"], size=int(round(t["in.plane_points"].shape[1] ** 0.5)))
    for name, computed in (("in.plane_points", points), ("in.plane_dirs", direction)):
        _report(name, computed, t[name])
        assert_close_to_scale(computed, t[name], name)


# --------------------------------------------------------------------------- chained
def test_the_whole_path_from_flame_coefficients(fixture, flame, template_faces, neck_vertices):
    t = fixture.tensors
    geometry = ReleaseGeometry(flame, template_faces, neck_vertices, levels=2)
    source = geometry.mesh(_pose(fixture, "f"))
    target = geometry.mesh(_pose(fixture, "t"), offsets=t["v_offset"])
    for level in LEVELS:
        view = geometry.source_view(source, t["in.f_transform"], level)
        stages = {
            f"L{level}.f_sub_points": view.points,
            f"L{level}.t_sub_points": geometry.subdivide(target, level),
            f"L{level}.n_coords": view.n_coords,
            f"L{level}.ndc": view.ndc,
            _depth_name(fixture, level): view.depth_map,
            f"L{level}.cloth_mask_4dino": view.plane_mask,
        }
        for name, computed in stages.items():
            assert_close_to_scale(computed, t[name], name)
        stored = t[f"L{level}.occluded_vertices_mask"].bool()
        agreement = float((view.occluded == stored).float().mean())
        print(f"\nchained L{level}: occlusion agreement {agreement:.4%}", end="")
        assert agreement >= MASK_AGREEMENT
    for which, points in (("f", source), ("t", target)):
        computed = geometry.face_depth_map(points, t[f"in.{which}_transform"])
        assert_close_to_scale(computed, t[f"zbuf.{which}_face"], f"zbuf.{which}_face")
