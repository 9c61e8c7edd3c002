"""Mesh depth buffer (compiled and torch) and per-vertex visibility."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from core.geometry.camera import Camera
from core.render import mesh_depth, visible_vertices
from core.render.scenes import HEAD_RADII, ellipsoid_mesh, portrait_camera
from timing import typical_seconds

QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def _quad(z: float, half: float = 0.3, tilt: float = 0.0) -> np.ndarray:
    """A square facing +z at depth ``z`` from the origin, optionally tilted about the x axis
    (its points at height y move to z + tilt * y)."""
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return np.column_stack([corners, z + tilt * corners[:, 1]])


def _camera(size: int = 64) -> Camera:
    return Camera.look_at((0, 0, 10.0), (0, 0, 0), size, size, 12.0)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_tilted_plane_depth_is_perspective_correct(backend):
    camera = _camera()
    tilt = 0.8
    depth = np.asarray(mesh_depth(_quad(0.0, tilt=tilt), QUAD_FACES, camera, backend=backend))
    assert np.isinf(depth[0, 0]) and np.isfinite(depth[32, 32])
    # The exact depth along each covered pixel's ray: plane z_w = tilt * y_w, camera at z_w = 10.
    rows, cols = np.nonzero(np.isfinite(depth))
    ray_x = (cols + 0.5 - camera.K[0, 2]) / camera.K[0, 0]
    ray_y = -(rows + 0.5 - camera.K[1, 2]) / camera.K[1, 1]  # image rows grow downwards, world y up
    exact = 10.0 / (1.0 + tilt * ray_y)  # depth d with 10 - d = tilt * (d * ray_y)
    np.testing.assert_allclose(depth[rows, cols], exact, rtol=2e-6)
    assert np.isfinite(ray_x).all()


def test_nearer_triangles_win_and_coverage_follows_pixel_centres():
    camera = _camera()
    vertices = np.concatenate([_quad(0.0), _quad(1.0, half=0.1)])
    faces = np.concatenate([QUAD_FACES, QUAD_FACES + 4])
    depth = mesh_depth(vertices, faces, camera)
    assert depth[32, 32] == pytest.approx(9.0) and depth[32, 25] == pytest.approx(10.0)
    # The big quad spans +-0.3 at distance 10: 32 +- 0.3 * 384 / 10 = [20.48, 43.52] px.
    covered_cols = np.flatnonzero(np.isfinite(depth[32]))
    assert covered_cols[0] == 20 and covered_cols[-1] == 43  # centres 20.5 and 43.5


def test_cpu_and_torch_buffers_agree_on_a_head_mesh():
    vertices, faces = ellipsoid_mesh(20_000)
    camera = Camera.orbit((0, 0, 0), 30.0, 10.0, 9.5, 200, 150, 12.0)
    cpu = mesh_depth(vertices, faces, camera)
    torch_depth = mesh_depth(torch.tensor(vertices), torch.tensor(faces), camera, backend="torch")
    assert isinstance(torch_depth, torch.Tensor) and torch_depth.dtype == torch.float64
    torch_depth = torch_depth.numpy()
    assert (np.isfinite(cpu) == np.isfinite(torch_depth)).all() and np.isfinite(cpu).mean() > 0.1
    finite = np.isfinite(cpu)
    np.testing.assert_allclose(cpu[finite], torch_depth[finite], rtol=1e-6)


def test_visibility_of_a_head_with_an_occluder():
    vertices, faces = ellipsoid_mesh(40_000)
    camera = portrait_camera(512)
    normals = vertices / np.square(HEAD_RADII)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    to_camera = camera.center - vertices
    facing = np.einsum("ij,ij->i", normals, to_camera / np.linalg.norm(to_camera, axis=1, keepdims=True))
    visible = visible_vertices(vertices, faces, camera)
    assert visible[facing > 0.3].all()
    assert not visible[facing < -0.2].any()  # near the silhouette, pixel centres may miss the mesh

    # A small square 1 unit in front of the face hides the vertices behind it.
    occluder = _quad(1.5, half=0.1)
    occluded_vertices = np.concatenate([vertices, occluder])
    occluded_faces = np.concatenate([faces, QUAD_FACES + len(vertices)])
    hidden = ~visible_vertices(occluded_vertices, occluded_faces, camera)[: len(vertices)]
    behind = (np.abs(vertices[:, 0]) < 0.05) & (np.abs(vertices[:, 1]) < 0.05) & (vertices[:, 2] > 0)
    assert behind.sum() > 10 and hidden[behind].all()
    assert not hidden[(facing > 0.3) & (np.abs(vertices[:, 0]) > 0.2)].any()


def test_visibility_outside_the_image_or_behind_the_camera():
    camera = _camera()
    vertices = np.concatenate([_quad(0.0), [[5.0, 0.0, 0.0], [0.0, 0.0, 12.0]]])  # off-image, behind
    visible = visible_vertices(vertices, QUAD_FACES, camera)
    assert visible[:4].all() and not visible[4:].any()
    as_torch = visible_vertices(torch.tensor(vertices), torch.tensor(QUAD_FACES), camera)
    assert isinstance(as_torch, torch.Tensor) and as_torch.tolist() == visible.tolist()


def test_depth_buffer_of_160k_triangles_at_512_takes_under_20_ms():
    vertices, faces = ellipsoid_mesh(160_000)
    assert abs(len(faces) - 160_000) < 1_000
    seconds = typical_seconds(
        """
        from core.render import mesh_depth
        from core.render.scenes import ellipsoid_mesh, portrait_camera
        vertices, faces = ellipsoid_mesh(160_000)
        camera = portrait_camera(512)
        """,
        "mesh_depth(vertices, faces, camera)",
    )
    assert seconds < 0.020
