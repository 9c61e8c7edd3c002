"""Triangle-mesh depth buffer (z-buffer) and the per-vertex visibility test built on it.

Both reconstruction methods use it: the training-free method samples photo colours only
for visible vertices, and the network's occlusion-aware feature fusion (OAFF, eq. 5-6)
adds local features only where a vertex is visible.

Rules, shared by the compiled CPU kernel and the torch version:

* A pixel is covered by a triangle when its centre ``(x + 0.5, y + 0.5)`` lies inside the
  projected triangle or on its edge (either winding; no back-face culling).
* Depth is camera-space z, interpolated perspective-correctly (``1/z`` is linear in screen
  space); the buffer keeps the smallest. Empty pixels hold ``+inf``.
* Triangles with a vertex at or behind the near plane are skipped.
* A vertex is visible when it is in front of the camera, projects into the image, and its
  depth is at most the buffer's at its pixel plus a tolerance. (A vertex of the mesh is
  never in front of its own surface, so this is "equal to the buffer within the
  tolerance", except at silhouettes where the pixel centre misses the vertex's triangles
  and the buffer shows something farther, or nothing: then it is visible, as it should be.)
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import torch
from numba import njit, prange

from core.geometry.camera import Camera
from core.interrupts import deferred
from core.render.constants import NEAR_PLANE
from core.render.kernels import host_backend

#: Default depth tolerance of the visibility test, in world units (FLAME x5: 0.01 = 2 mm).
VISIBILITY_TOLERANCE = 0.01

#: (pixel, triangle) pairs the torch version evaluates at once (bounds its memory).
_TORCH_PAIRS_PER_CHUNK = 1 << 22

Backend = Literal["auto", "cpu", "torch"]
ArrayLike = np.ndarray | torch.Tensor


def mesh_depth(vertices: ArrayLike, faces: ArrayLike, camera: Camera, backend: Backend = "auto") -> ArrayLike:
    """Depth buffer [H, W] of a triangle mesh seen by ``camera`` (+inf where empty).

    Args:
        vertices: [V, 3] world-space positions, numpy or torch.
        faces: [F, 3] integer vertex indices.
        backend: ``cpu`` (compiled, multi-threaded), ``torch`` (vectorised, any device), or
            ``auto``: torch for CUDA tensors and while the cpu kernels compile in the
            background (:mod:`core.render.kernels`), cpu otherwise.

    Returns:
        float32 numpy array for numpy input, else a tensor on the vertices' device (float32,
        or float64 for float64 vertices).
    """
    if _use_torch(vertices, backend):
        vertices_t = torch.as_tensor(vertices)
        depth_t = _depth_torch(vertices_t, torch.as_tensor(faces, device=vertices_t.device), camera)
        return depth_t if isinstance(vertices, torch.Tensor) else depth_t.numpy().astype(np.float32)
    depth = _depth_cpu(_numpy(vertices, np.float64), _numpy(faces, np.int64), camera)
    if isinstance(vertices, torch.Tensor):
        return torch.from_numpy(depth).to(device=vertices.device, dtype=_float_dtype(vertices))
    return depth


def visible_vertices(
    vertices: ArrayLike,
    faces: ArrayLike,
    camera: Camera,
    tolerance: float = VISIBILITY_TOLERANCE,
    depth: ArrayLike | None = None,
    backend: Backend = "auto",
) -> ArrayLike:
    """[V] bool: which vertices the camera sees (see the module's rules).

    ``depth`` is the mesh's depth buffer when already computed (same camera).
    The result is numpy for numpy ``vertices``, else a tensor on their device.
    """
    if depth is None:
        depth = mesh_depth(vertices, faces, camera, backend)
    if isinstance(vertices, torch.Tensor):
        depth = torch.as_tensor(depth, device=vertices.device)
        uv, z = camera.project(vertices.detach().to(torch.float64))
        pixel = torch.floor(uv).nan_to_num(-1.0).clamp(-1, max(camera.width, camera.height)).long()
        inside = _inside(pixel, z, camera)
        x, y = pixel[:, 0].clamp(0, camera.width - 1), pixel[:, 1].clamp(0, camera.height - 1)
        return inside & (z <= depth[y, x].to(torch.float64) + tolerance)
    uv, z = camera.project(np.asarray(vertices, dtype=np.float64))
    pixel = np.nan_to_num(np.floor(uv), nan=-1.0)
    pixel = np.clip(pixel, -1, max(camera.width, camera.height)).astype(np.int64)
    inside = _inside(pixel, z, camera)
    x, y = np.clip(pixel[:, 0], 0, camera.width - 1), np.clip(pixel[:, 1], 0, camera.height - 1)
    return inside & (z <= depth[y, x].astype(np.float64) + tolerance)


def _inside(pixel: ArrayLike, z: ArrayLike, camera: Camera) -> ArrayLike:
    """[V] bool: in front of the near plane and inside the image."""
    x, y = pixel[:, 0], pixel[:, 1]
    return (z > NEAR_PLANE) & (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height)


def _use_torch(vertices: ArrayLike, backend: Backend) -> bool:
    if backend not in ("auto", "cpu", "torch"):
        raise ValueError(f"unknown depth buffer backend '{backend}': choose auto, cpu or torch")
    if backend == "auto":
        on_cuda = isinstance(vertices, torch.Tensor) and vertices.device.type == "cuda"
        return on_cuda or host_backend() == "reference"
    return backend == "torch"


def _numpy(values: ArrayLike, dtype) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(values, dtype=dtype)


def _float_dtype(vertices: torch.Tensor) -> torch.dtype:
    return torch.float64 if vertices.dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------- compiled CPU version
def _depth_cpu(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """[H, W] float32 depth buffer; vertices [V, 3] float64, faces [F, 3] int64."""
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got {list(faces.shape)}")
    workers = max(1, min(numba.get_num_threads(), len(faces)))
    R, t, K = camera.R, camera.t, camera.K
    with deferred():  # the kernel boxes its result through Python
        return _rasterize_depth(vertices, faces, R, t, K, camera.width, camera.height, workers)


@njit(cache=True, inline="always")
def _cover(x0, y0, x1, y1, x2, y2, px, py, inv_area):
    """Barycentric weights of pixel centre (px, py) in the screen triangle (any winding)."""
    w0 = ((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)) * inv_area
    w1 = ((x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)) * inv_area
    return w0, w1, 1.0 - w0 - w1


@njit(parallel=True, cache=True, nogil=True)
def _rasterize_depth(vertices, faces, R, t, K, width, height, workers):
    """Each worker rasterises a contiguous share of the faces into its own buffer; the
    buffers are then reduced by minimum."""
    n = vertices.shape[0]
    screen = np.empty((n, 3))  # u, v, z
    for i in prange(n):
        x = R[0, 0] * vertices[i, 0] + R[0, 1] * vertices[i, 1] + R[0, 2] * vertices[i, 2] + t[0]
        y = R[1, 0] * vertices[i, 0] + R[1, 1] * vertices[i, 1] + R[1, 2] * vertices[i, 2] + t[1]
        z = R[2, 0] * vertices[i, 0] + R[2, 1] * vertices[i, 1] + R[2, 2] * vertices[i, 2] + t[2]
        screen[i, 2] = z
        if z > NEAR_PLANE:
            screen[i, 0] = K[0, 0] * x / z + K[0, 2]  # Camera.project's pinhole
            screen[i, 1] = K[1, 1] * y / z + K[1, 2]
    buffers = np.full((workers, height, width), np.inf)
    num_faces = faces.shape[0]
    for worker in prange(workers):
        buffer = buffers[worker]
        for f in range(num_faces * worker // workers, num_faces * (worker + 1) // workers):
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            z0, z1, z2 = screen[a, 2], screen[b, 2], screen[c, 2]
            if not (z0 > NEAR_PLANE and z1 > NEAR_PLANE and z2 > NEAR_PLANE):
                continue
            x0, y0 = screen[a, 0], screen[a, 1]
            x1, y1 = screen[b, 0], screen[b, 1]
            x2, y2 = screen[c, 0], screen[c, 1]
            area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            if area == 0.0:
                continue
            inv_area = 1.0 / area
            col_from = max(0, int(np.ceil(min(x0, x1, x2) - 0.5)))
            col_to = min(width - 1, int(np.floor(max(x0, x1, x2) - 0.5)))
            row_from = max(0, int(np.ceil(min(y0, y1, y2) - 0.5)))
            row_to = min(height - 1, int(np.floor(max(y0, y1, y2) - 0.5)))
            for row in range(row_from, row_to + 1):
                for col in range(col_from, col_to + 1):
                    w0, w1, w2 = _cover(x0, y0, x1, y1, x2, y2, col + 0.5, row + 0.5, inv_area)
                    if w0 >= 0.0 and w1 >= 0.0 and w2 >= 0.0:
                        depth = 1.0 / (w0 / z0 + w1 / z1 + w2 / z2)
                        if depth < buffer[row, col]:
                            buffer[row, col] = depth
    out = np.empty((height, width), np.float32)
    for row in prange(height):
        for col in range(width):
            best = buffers[0, row, col]
            for worker in range(1, workers):
                best = min(best, buffers[worker, row, col])
            out[row, col] = best
    return out


# ---------------------------------------------------------------------- torch version
@torch.no_grad()
def _depth_torch(vertices: torch.Tensor, faces: torch.Tensor, camera: Camera) -> torch.Tensor:
    """[H, W] depth buffer by (pixel, triangle) pairs and a scatter-min, on the vertices' device."""
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got {list(faces.shape)}")
    width, height = camera.width, camera.height
    uv, z = camera.project(vertices.detach().to(torch.float64))
    triangles = torch.cat([uv, z[:, None]], dim=1)[faces.long()]  # [F, 3 corners, (u, v, z)]
    x, y, depth = triangles.unbind(-1)  # [F, 3] each
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    usable = (depth > NEAR_PLANE).all(dim=1) & (area != 0)
    x, y, depth, area = x[usable], y[usable], depth[usable], area[usable]
    col_from = torch.ceil(x.min(dim=1).values - 0.5).clamp(min=0).long()
    col_to = torch.floor(x.max(dim=1).values - 0.5).clamp(max=width - 1).long()
    row_from = torch.ceil(y.min(dim=1).values - 0.5).clamp(min=0).long()
    row_to = torch.floor(y.max(dim=1).values - 0.5).clamp(max=height - 1).long()
    box_width = (col_to - col_from + 1).clamp(min=0)
    counts = box_width * (row_to - row_from + 1).clamp(min=0)

    buffer = torch.full((height * width,), torch.inf, dtype=torch.float64, device=vertices.device)
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(counts):
        done_before = ends[start - 1] if start > 0 else 0
        stop = torch.searchsorted(ends, done_before + _TORCH_PAIRS_PER_CHUNK, right=True)
        stop = max(int(stop), start + 1)  # at least one triangle per chunk
        chunk = torch.arange(start, min(stop, len(counts)), device=vertices.device)
        tri = torch.repeat_interleave(chunk, counts[chunk])
        local = torch.arange(len(tri), device=vertices.device) - (ends[tri] - counts[tri] - done_before)
        col = col_from[tri] + local % box_width[tri]
        row = row_from[tri] + local // box_width[tri]
        px, py = col.to(torch.float64) + 0.5, row.to(torch.float64) + 0.5
        tx, ty, tz = x[tri], y[tri], depth[tri]
        inv_area = 1.0 / area[tri]
        w0 = ((tx[:, 2] - tx[:, 1]) * (py - ty[:, 1]) - (ty[:, 2] - ty[:, 1]) * (px - tx[:, 1])) * inv_area
        w1 = ((tx[:, 0] - tx[:, 2]) * (py - ty[:, 2]) - (ty[:, 0] - ty[:, 2]) * (px - tx[:, 2])) * inv_area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        pair_depth = 1.0 / (w0 / tz[:, 0] + w1 / tz[:, 1] + w2 / tz[:, 2])
        buffer.scatter_reduce_(0, (row * width + col)[inside], pair_depth[inside], reduce="amin")
        start = stop
    return buffer.reshape(height, width).to(_float_dtype(vertices))
