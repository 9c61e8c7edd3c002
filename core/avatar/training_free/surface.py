"""Flat Gaussians laid on a surface (its normals: :func:`core.geometry.mesh.vertex_normals`)."""

from __future__ import annotations

import numpy as np


def flat_gaussian_shapes(
    normals: np.ndarray, tangent_sigma: np.ndarray, flatness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotations and scales of Gaussians lying flat on a surface.

    Args:
        normals: [N, 3] unit surface normals.
        tangent_sigma: [N] standard deviation along the surface (the same in every
            tangent direction, so any rotation taking +z to the normal will do).
        flatness: standard deviation along the normal, relative to ``tangent_sigma``.

    Returns:
        quats: [N, 4] (w, x, y, z): the shortest rotations taking +z to the normals.
        scales: [N, 3] ``(sigma, sigma, flatness * sigma)``.
    """
    # q = (1 + z.n, z x n), normalised; for n = -z any half turn about a horizontal axis.
    quats = np.column_stack([1.0 + normals[:, 2], -normals[:, 1], normals[:, 0], np.zeros(len(normals))])
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 1e-6, quats / np.maximum(norm, 1e-12), [[0.0, 1.0, 0.0, 0.0]])
    scales = np.column_stack([tangent_sigma, tangent_sigma, flatness * tangent_sigma])
    return quats, scales
