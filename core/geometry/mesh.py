"""Small helpers for triangle meshes given as ``faces [F, 3]`` index arrays: topology, normals,
length scales."""

from __future__ import annotations

import numpy as np


def validated_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """``faces`` as an int64 ``[F, 3]`` array, after checking it describes triangles.

    Raises ``ValueError`` when the shape is not ``[F, 3]``, an index lies outside
    ``[0, num_vertices)``, or a face repeats a vertex (a degenerate triangle).
    """
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got {list(faces.shape)}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64, copy=False)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(f"faces index vertices outside [0, {num_vertices})")
    repeats_vertex = (faces == np.roll(faces, 1, axis=1)).any(axis=1)
    if repeats_vertex.any():
        first = int(np.argmax(repeats_vertex))
        raise ValueError(f"{int(repeats_vertex.sum())} face(s) repeat a vertex, e.g. face {first}")
    return faces


def unique_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undirected edges of a triangle mesh and which edge each side of each face is.

    Args:
        faces: ``[F, 3]`` int vertex indices.

    Returns:
        edges: ``[E, 2]`` int64, each row ``(low, high)`` with ``low < high``; rows in
            lexicographic order.
        face_edge_index: ``[F, 3]`` int64; ``face_edge_index[f, j]`` is the row of ``edges``
            joining ``faces[f, j]`` and ``faces[f, (j + 1) % 3]``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    sides = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)  # [3F, 2]
    low, high = sides.min(axis=1), sides.max(axis=1)
    stride = int(high.max()) + 1 if len(high) else 1
    keys, face_side_to_edge = np.unique(low * stride + high, return_inverse=True)
    edges = np.stack([keys // stride, keys % stride], axis=1)
    return edges, face_side_to_edge.reshape(-1, 3)


def edge_face_counts(face_edge_index: np.ndarray, num_edges: int) -> np.ndarray:
    """``[E]`` int: how many faces share each edge (1 on a boundary, 2 inside a manifold).

    Raises ``ValueError`` when an edge is shared by three or more faces (non-manifold).

    Args:
        face_edge_index: ``[F, 3]`` as returned by :func:`unique_edges`.
        num_edges: ``E``.
    """
    counts = np.bincount(np.asarray(face_edge_index).ravel(), minlength=num_edges)
    non_manifold = np.flatnonzero(counts > 2)
    if len(non_manifold):
        raise ValueError(
            f"{len(non_manifold)} edge(s) are shared by more than two faces (non-manifold mesh), "
            f"e.g. edge {int(non_manifold[0])} with {int(counts[non_manifold[0]])} faces"
        )
    return counts


def interior_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges shared by two faces, and those two faces.

    Args:
        faces: ``[F, 3]`` int vertex indices.

    Returns:
        edges: ``[E, 2]`` int64 ``(low, high)`` vertex pairs, in lexicographic order.
        edge_faces: ``[E, 2]`` int64 the two faces of each edge, the lower index first.
    """
    edges, face_edge_index = unique_edges(faces)
    sides = face_edge_index.ravel()  # [3F] the edge of each side, face by face
    order = np.argsort(sides, kind="stable")
    sorted_sides, owners = sides[order], order // 3
    shared = np.flatnonzero(sorted_sides[1:] == sorted_sides[:-1])
    return edges[sorted_sides[shared]], np.stack([owners[shared], owners[shared + 1]], axis=1)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[F, 3] area-weighted normals of ``vertices`` [V, 3] for ``faces`` [F, 3]: twice each
    triangle's area long, pointing outwards for counter-clockwise faces."""
    corners = vertices[faces]  # [F, 3, 3]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, per_face: np.ndarray | None = None) -> np.ndarray:
    """[V, 3] float64 unit area-weighted normals of ``vertices`` [V, 3] for wound ``faces``
    [F, 3] (vertices in no face get +z); ``per_face`` [F, 3]: :func:`face_normals`, when
    the caller has them already."""
    per_face = face_normals(vertices, faces) if per_face is None else per_face
    corner_vertex = faces.ravel()
    normals = np.column_stack(
        [np.bincount(corner_vertex, np.repeat(per_face[:, k], 3), len(vertices)) for k in range(3)]
    )
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-30), [0.0, 0.0, 1.0])


def mean_edge_lengths(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V] mean length of the triangle sides at each vertex (0 for vertices in no face).

    Sides are counted per triangle, so an edge between two triangles counts twice and a
    boundary edge once: a local length scale, without the cost of finding unique edges.
    """
    corners = vertices[faces]  # [F, 3, 3]
    side = np.linalg.norm(corners - np.roll(corners, -1, axis=1), axis=2)  # side k joins corners k, k+1
    at_corner = side + np.roll(side, 1, axis=1)  # the two sides meeting at each corner
    total = np.bincount(faces.ravel(), at_corner.ravel(), minlength=len(vertices))
    count = np.bincount(faces.ravel(), minlength=len(vertices))
    return total / np.maximum(2 * count, 1)
