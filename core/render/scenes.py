"""Procedural scenes shared by the render tests and the benchmark.

``head_scene`` stands in for an avatar at the paper's Gaussian counts: flat Gaussians on
an ellipsoid head (FLAME x5 size, radius about 0.5 units) sized from the local point
spacing so the surface is closed, plus a curved sheet of shoulder Gaussians below and
behind it, seen by ``portrait_camera`` (focal 12, distance 9.5, the paper's framing).
``random_scene`` scatters arbitrary Gaussians in front of a camera, and
``ellipsoid_mesh`` is a head-sized triangle mesh for the depth buffer.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from core.config import load_config
from core.geometry.camera import Camera
from core.render.gaussians import Gaussians

#: Head ellipsoid semi-axes (x: ear to ear, y: chin to crown, z: nose to back), FLAME x5 units.
HEAD_RADII = (0.44, 0.56, 0.5)
#: The camera looks slightly below the head centre, as in a head-and-shoulders crop.
PORTRAIT_TARGET = (0.0, -0.2, 0.0)
#: Tangential standard deviation of a surface Gaussian, in local point spacings.
SURFACE_SIGMA_PER_SPACING = 0.8
#: Normal standard deviation relative to the tangential one (surface Gaussians are flat).
SURFACE_FLATNESS = 0.1
#: Opacities of surface Gaussians are drawn uniformly from this range.
SURFACE_OPACITY = (0.6, 1.0)
#: Shoulder sheet: x and y ranges and how far it bends back at its sides.
SHOULDER_X = (-0.95, 0.95)
SHOULDER_Y = (-1.1, -0.42)
SHOULDER_BEND = 0.35


def portrait_camera(size: int = 512, config_name: str = "paper") -> Camera:
    """The paper's frontal camera (focal and distance from the config) at ``size`` x ``size``."""
    camera = load_config(config_name).camera
    return Camera.orbit(PORTRAIT_TARGET, 0.0, 0.0, camera.distance, size, size, camera.focal_normalized)


def head_scene(
    num_head: int,
    num_shoulder: int,
    channels: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Gaussians:
    """``num_head`` Gaussians on an ellipsoid head plus ``num_shoulder`` on a shoulder sheet."""
    rng = np.random.default_rng(seed)
    head = _ellipsoid_surface(num_head, rng)
    shoulders = _shoulder_surface(num_shoulder, rng)
    points, normals, spacing = (np.concatenate(parts) for parts in zip(head, shoulders))
    n = len(points)
    tangent_sigma = SURFACE_SIGMA_PER_SPACING * spacing[:, None] * rng.uniform(0.75, 1.25, (n, 2))
    scales = np.concatenate([tangent_sigma, SURFACE_FLATNESS * tangent_sigma.mean(1, keepdims=True)], axis=1)
    return _surface_gaussians(points, normals, scales, rng.uniform(*SURFACE_OPACITY, n), channels, rng, dtype)


def random_scene(
    count: int, camera: Camera, channels: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Gaussians:
    """``count`` Gaussians with random shapes, rotations, opacities and features.

    Centres fill the view (10% beyond its edges) at depths within +-10% of the camera's
    distance to the world origin; projected sizes range from sub-pixel to a tenth of the image.
    """
    rng = np.random.default_rng(seed)
    distance = float(np.linalg.norm(camera.center))
    depth = distance * rng.uniform(0.9, 1.1, count)
    half_view = 1.1 * 0.5 * np.array([camera.width / camera.K[0, 0], camera.height / camera.K[1, 1]])
    xy = depth[:, None] * rng.uniform(-1.0, 1.0, (count, 2)) * half_view
    means = (np.concatenate([xy, depth[:, None]], axis=1) - camera.t) @ camera.R  # camera -> world
    pixel = distance / camera.K[0, 0]  # world size of one pixel at that distance
    scales = pixel * np.exp(rng.uniform(np.log(0.2), np.log(0.05 * camera.width), (count, 3)))
    return Gaussians(
        torch.as_tensor(means, dtype=dtype),
        torch.as_tensor(rng.normal(size=(count, 4)), dtype=dtype),
        torch.as_tensor(scales, dtype=dtype),
        torch.as_tensor(rng.uniform(0.05, 1.0, count), dtype=dtype),
        torch.as_tensor(rng.uniform(0.0, 1.0, (count, channels)), dtype=dtype),
    )


def ellipsoid_mesh(num_triangles: int = 160_000) -> tuple[np.ndarray, np.ndarray]:
    """A closed latitude-longitude mesh of the head ellipsoid with about ``num_triangles`` faces.

    Returns vertices [V, 3] float64 and faces [F, 3] int64 (counter-clockwise seen from outside).
    """
    rings = max(2, int(round(np.sqrt(num_triangles / 4.0))))  # latitude rings between the poles
    segments = max(3, int(round(num_triangles / (2.0 * rings))))
    theta = np.pi * np.arange(1, rings + 1) / (rings + 1)
    phi = 2 * np.pi * np.arange(segments) / segments
    sin_t, cos_t = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring_points = np.stack(
        [sin_t * np.sin(phi), np.broadcast_to(cos_t, (rings, segments)), sin_t * np.cos(phi)], axis=-1
    ).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring_points, [[0, -1, 0]]]) * HEAD_RADII
    south = len(vertices) - 1
    ring = lambda r, s: 1 + r * segments + s % segments  # noqa: E731
    s = np.arange(segments)
    faces = [np.stack([np.zeros_like(s), ring(0, s), ring(0, s + 1)], axis=1)]
    for r in range(rings - 1):
        faces.append(np.stack([ring(r, s), ring(r + 1, s), ring(r + 1, s + 1)], axis=1))
        faces.append(np.stack([ring(r, s), ring(r + 1, s + 1), ring(r, s + 1)], axis=1))
    faces.append(np.stack([np.full_like(s, south), ring(rings - 1, s + 1), ring(rings - 1, s)], axis=1))
    return vertices.astype(np.float64), np.concatenate(faces).astype(np.int64)


def _ellipsoid_surface(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near-uniform points on the head ellipsoid: positions [n, 3], normals [n, 3], spacing [n]."""
    index = np.arange(count) + 0.5
    y = 1.0 - 2.0 * index / count  # Fibonacci sphere
    ring = np.sqrt(1.0 - y**2)
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index + rng.uniform(0, 2 * np.pi)
    unit = np.stack([ring * np.sin(angle), y, ring * np.cos(angle)], axis=1)
    radii = np.asarray(HEAD_RADII)
    normals = unit / radii
    # A linear map A scales the area around a sphere point with normal u by det(A) |A^-T u|.
    area_stretch = np.prod(radii) * np.linalg.norm(normals, axis=1)
    spacing = np.sqrt(4 * np.pi / max(count, 1) * area_stretch)
    return unit * radii, normals / np.linalg.norm(normals, axis=1, keepdims=True), spacing


def _shoulder_surface(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jittered grid on a sheet that bends back at the sides: positions, normals, spacing.

    The grid is filled row by row from the top, so a partial last row lies at the bottom.
    """
    (x0, x1), (y0, y1) = SHOULDER_X, SHOULDER_Y
    spacing = np.sqrt((x1 - x0) * (y1 - y0) / max(count, 1))
    columns = max(1, int(round((x1 - x0) / spacing)))
    cell = np.arange(count)
    x = x0 + (cell % columns + rng.uniform(0, 1, count)) * (x1 - x0) / columns
    y = y1 - (cell // columns + rng.uniform(0, 1, count)) * spacing
    half_width = 0.5 * (x1 - x0)
    z = -0.1 - SHOULDER_BEND * (x / half_width) ** 2
    normals = np.stack([2 * SHOULDER_BEND * x / half_width**2, np.zeros(count), np.ones(count)], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return np.stack([x, y, z], axis=1), normals, np.full(count, spacing)


def _surface_gaussians(
    points: np.ndarray,
    normals: np.ndarray,
    scales: np.ndarray,
    opacities: np.ndarray,
    channels: int,
    rng: np.random.Generator,
    dtype: torch.dtype,
) -> Gaussians:
    """Gaussians whose third axis is the surface normal, turned randomly about it."""
    helper = np.where(np.abs(normals[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    tangent = np.cross(helper, normals)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    bitangent = np.cross(normals, tangent)
    turn = rng.uniform(0, 2 * np.pi, (len(points), 1))
    axis_u = np.cos(turn) * tangent + np.sin(turn) * bitangent
    axis_v = np.cross(normals, axis_u)
    rotations = np.stack([axis_u, axis_v, normals], axis=-1)  # columns are the Gaussian's axes
    xyzw = Rotation.from_matrix(rotations).as_quat() if len(points) else np.zeros((0, 4))
    return Gaussians(
        torch.as_tensor(points, dtype=dtype),
        torch.as_tensor(xyzw[:, [3, 0, 1, 2]], dtype=dtype),
        torch.as_tensor(scales, dtype=dtype),
        torch.as_tensor(opacities, dtype=dtype),
        torch.as_tensor(rng.uniform(0.0, 1.0, (len(points), channels)), dtype=dtype),
    )
