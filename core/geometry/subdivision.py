"""Loop and midpoint subdivision as sparse linear operators: the avatar's level-of-detail mechanism.

One level maps a mesh of V vertices, E edges and F faces to V + E vertices and 4F faces
(FLAME: 5,023 -> 20,018 -> 79,936 vertices). New vertex order: the V old vertices first
(row v refines old vertex v), then one vertex per edge, in the order of
:func:`core.geometry.mesh.unique_edges`. Each face ``(a, b, c)`` with edge vertices
``ab, bc, ca`` becomes the four faces ``(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)``,
in that order, so face ``f`` of level l is the parent of faces ``4f .. 4f + 3`` of level l + 1.

The map is linear, so one operator ``[V + E, V]`` refines positions, per-vertex features and
LBS weights alike, and the operators of successive levels compose by matrix product. Every
row sums to 1, so weights that sum to 1 per vertex still do after subdivision.

Loop weights (Loop 1987, the rules of ``trimesh.remesh.subdivide_loop``):

* interior edge ``(a, b)`` with opposite vertices ``c, d``: 3/8 a + 3/8 b + 1/8 c + 1/8 d;
* boundary edge (one face): 1/2 a + 1/2 b;
* interior vertex of valence k: (1 - k beta) self + beta per neighbour, with
  beta = (5/8 - (3/8 + 1/4 cos(2 pi / k))^2) / k;
* boundary vertex: 3/4 self + 1/8 per neighbour along a boundary edge. (trimesh instead takes
  every neighbour that is itself on a boundary, which differs where an interior edge joins two
  boundary vertices, e.g. at the corner of a grid.)

Midpoint subdivision keeps old vertices and puts each new vertex at its edge's midpoint.

Vertices that no face references are passed through unchanged (their row is the identity).
Edges shared by three or more faces, and vertices on more than two boundary edges, raise
``ValueError``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from core.geometry.mesh import edge_face_counts, unique_edges, validated_faces

Scheme = Literal["loop", "midpoint"]
SCHEMES: tuple[Scheme, ...] = ("loop", "midpoint")


class SparseOperator:
    """A fixed linear map ``[N_out, N_in]`` applied along the vertex axis of arrays or tensors.

    ``op(x)`` accepts numpy ``[N_in, ...]`` (returns numpy ``[N_out, ...]``) or torch
    ``[N_in, C]`` / ``[B, N_in, C]`` (returns torch ``[N_out, C]`` / ``[B, N_out, C]`` on the
    same device). float32 and float64 inputs keep their dtype; other numpy dtypes give
    float64. The torch result is differentiable with respect to ``x``.

    The matrix in the input's dtype (scipy CSR for numpy, torch sparse CSR per device for
    torch) is built on first use and cached.
    """

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix: sp.csr_matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        self.matrix.sum_duplicates()  # also sorts the column indices of each row, as torch requires
        self._scipy_by_dtype: dict[np.dtype, sp.csr_matrix] = {}
        self._torch_by_dtype_device: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    @property
    def shape(self) -> tuple[int, int]:
        """``(N_out, N_in)``."""
        return self.matrix.shape

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(x, torch.Tensor):
            return self._apply_torch(x)
        return self._apply_numpy(np.asarray(x))

    def _apply_numpy(self, x: np.ndarray) -> np.ndarray:
        self._check_vertex_axis(x.shape, axis=0)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        matrix = self._scipy_by_dtype.get(dtype)
        if matrix is None:
            matrix = self._scipy_by_dtype[dtype] = self.matrix.astype(dtype)
        flat = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=dtype)
        return (matrix @ flat).reshape(self.shape[0], *x.shape[1:])

    def _apply_torch(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"torch input must be float32 or float64, got {x.dtype}")
        if x.dim() == 2:
            self._check_vertex_axis(x.shape, axis=0)
            return torch.sparse.mm(self._torch_matrix(x.dtype, x.device), x)
        if x.dim() == 3:
            self._check_vertex_axis(x.shape, axis=1)
            batch, num_in, channels = x.shape
            stacked = x.transpose(0, 1).reshape(num_in, batch * channels)  # [N_in, B * C]
            out = torch.sparse.mm(self._torch_matrix(x.dtype, x.device), stacked)
            return out.reshape(self.shape[0], batch, channels).transpose(0, 1).contiguous()
        raise ValueError(f"torch input must be [N, C] or [B, N, C], got {list(x.shape)}")

    def _torch_matrix(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, device)
        matrix = self._torch_by_dtype_device.get(key)
        if matrix is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                matrix = self._torch_by_dtype_device[key] = torch.sparse_csr_tensor(
                    torch.from_numpy(self.matrix.indptr.astype(np.int64)),
                    torch.from_numpy(self.matrix.indices.astype(np.int64)),
                    torch.from_numpy(self.matrix.data),
                    size=self.shape,
                    dtype=dtype,
                    device=device,
                    check_invariants=True,
                )
        return matrix

    def _check_vertex_axis(self, shape: tuple[int, ...], axis: int) -> None:
        if len(shape) <= axis or shape[axis] != self.shape[1]:
            raise ValueError(f"expected {self.shape[1]} vertices on axis {axis}, got shape {list(shape)}")


def subdivision_step(
    faces: np.ndarray, num_vertices: int, scheme: Scheme = "loop"
) -> tuple[sp.csr_matrix, np.ndarray]:
    """One subdivision level of a triangle mesh.

    Args:
        faces: ``[F, 3]`` int vertex indices.
        num_vertices: ``V``; vertices no face references are passed through unchanged.
        scheme: ``"loop"`` or ``"midpoint"``.

    Returns:
        operator: ``[V + E, V]`` float64 CSR; ``new_vertices = operator @ vertices``.
        new_faces: ``[4F, 3]`` int64 into the ``V + E`` new vertices.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown subdivision scheme {scheme!r}; expected one of {SCHEMES}")
    faces = validated_faces(faces, num_vertices)
    edges, face_edge_index = unique_edges(faces)
    faces_per_edge = edge_face_counts(face_edge_index, len(edges))
    if scheme == "loop":
        vertex_rows = _loop_vertex_rows(edges, faces_per_edge == 1, num_vertices)
        edge_rows = _loop_edge_rows(edges, faces, face_edge_index, faces_per_edge == 2, num_vertices)
    else:
        vertex_rows = sp.identity(num_vertices, format="csr")
        edge_rows = _edge_midpoint_rows(edges, num_vertices)
    operator = sp.vstack([vertex_rows, edge_rows], format="csr")
    operator.eliminate_zeros()
    return operator, _split_faces(faces, face_edge_index, num_vertices)


@dataclass(frozen=True)
class LodHierarchy:
    """Levels 0..L of one subdivision scheme applied to a base mesh, and the maps between them.

    Attributes:
        scheme: ``"loop"`` or ``"midpoint"``.
        faces: ``faces[l]`` is ``[F_l, 3]`` int64 with ``F_l = 4^l F_0``.
        num_vertices: ``num_vertices[l] = V_l``; ``V_{l+1} = V_l + E_l``.
        steps: ``steps[l]`` maps level l to level l + 1, ``[V_{l+1}, V_l]`` (l < L).
        from_base: ``from_base[l]`` maps level 0 to level l, ``[V_l, V_0]``; the identity at
            l = 0, composed once when the hierarchy is built.
    """

    scheme: Scheme
    faces: tuple[np.ndarray, ...]
    num_vertices: tuple[int, ...]
    steps: tuple[SparseOperator, ...]
    from_base: tuple[SparseOperator, ...]

    @property
    def num_levels(self) -> int:
        """L, the finest level."""
        return len(self.steps)

    def apply(self, level: int, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Refine per-vertex values of the base mesh to ``level``.

        ``x`` is numpy ``[V_0, ...]`` or torch ``[V_0, C]`` / ``[B, V_0, C]``; the result has
        ``V_level`` on the same axis and is of the same kind (see :class:`SparseOperator`).
        """
        return self.from_base[level](x)


def build_lod(faces: np.ndarray, num_vertices: int, levels: int, scheme: Scheme = "loop") -> LodHierarchy:
    """Subdivide ``faces [F, 3]`` over ``num_vertices`` vertices ``levels`` times.

    Returns a :class:`LodHierarchy` holding the faces of every level, the one-level operators
    and their compositions from level 0.
    """
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    all_faces = [validated_faces(faces, num_vertices)]
    counts = [num_vertices]
    step_matrices: list[sp.csr_matrix] = []
    composed = [sp.identity(num_vertices, format="csr")]
    for _ in range(levels):
        step, next_faces = subdivision_step(all_faces[-1], counts[-1], scheme)
        step_matrices.append(step)
        composed.append((step @ composed[-1]).tocsr())
        all_faces.append(next_faces)
        counts.append(step.shape[0])
    return LodHierarchy(
        scheme=scheme,
        faces=tuple(all_faces),
        num_vertices=tuple(counts),
        steps=tuple(SparseOperator(m) for m in step_matrices),
        from_base=tuple(SparseOperator(m) for m in composed),
    )


def _loop_beta(valence: np.ndarray) -> np.ndarray:
    """Loop's neighbour weight for interior vertices of ``valence [N]`` (all > 0)."""
    valence = np.asarray(valence, dtype=np.float64)
    return (5.0 / 8.0 - (3.0 / 8.0 + 0.25 * np.cos(2.0 * np.pi / valence)) ** 2) / valence


def _loop_vertex_rows(edges: np.ndarray, is_boundary_edge: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """``[V, V]`` Loop rows for the old vertices.

    Args:
        edges: ``[E, 2]`` unique edges.
        is_boundary_edge: ``[E]`` bool, True for edges with a single face.
    """
    centre = np.concatenate([edges[:, 0], edges[:, 1]])  # [2E]: each edge seen from both ends
    neighbour = np.concatenate([edges[:, 1], edges[:, 0]])
    along_boundary = np.concatenate([is_boundary_edge, is_boundary_edge])

    valence = np.bincount(centre, minlength=num_vertices)
    boundary_valence = np.bincount(centre[along_boundary], minlength=num_vertices)
    bad = np.flatnonzero((boundary_valence != 0) & (boundary_valence != 2))
    if len(bad):
        raise ValueError(
            f"{len(bad)} vertex(es) lie on {int(boundary_valence[bad[0]])} boundary edges "
            f"(non-manifold), e.g. vertex {int(bad[0])}"
        )
    on_boundary = boundary_valence > 0
    interior = (valence > 0) & ~on_boundary

    beta = np.zeros(num_vertices)
    beta[interior] = _loop_beta(valence[interior])
    self_weight = np.ones(num_vertices)  # unreferenced vertices pass through
    self_weight[interior] = 1.0 - valence[interior] * beta[interior]
    self_weight[on_boundary] = 3.0 / 4.0
    neighbour_weight = np.where(on_boundary[centre], np.where(along_boundary, 1.0 / 8.0, 0.0), beta[centre])

    vertices = np.arange(num_vertices)
    return sp.csr_matrix(
        (
            np.concatenate([self_weight, neighbour_weight]),
            (np.concatenate([vertices, centre]), np.concatenate([vertices, neighbour])),
        ),
        shape=(num_vertices, num_vertices),
    )


def _loop_edge_rows(
    edges: np.ndarray,
    faces: np.ndarray,
    face_edge_index: np.ndarray,
    is_interior_edge: np.ndarray,
    num_vertices: int,
) -> sp.csr_matrix:
    """``[E, V]`` Loop rows for the new edge vertices.

    Args:
        edges: ``[E, 2]`` unique edges.
        faces: ``[F, 3]``.
        face_edge_index: ``[F, 3]`` edge of each face side, as from ``unique_edges``.
        is_interior_edge: ``[E]`` bool, True for edges with two faces.
    """
    num_edges = len(edges)
    endpoint_weight = np.where(is_interior_edge, 3.0 / 8.0, 1.0 / 2.0)
    # The vertex opposite side j of face f is faces[f, j + 2]; it weighs 1/8 on interior edges.
    side_edge = face_edge_index.ravel()  # [3F]
    opposite_vertex = np.roll(faces, -2, axis=1).ravel()
    opposite_weight = np.where(is_interior_edge[side_edge], 1.0 / 8.0, 0.0)
    return sp.csr_matrix(
        (
            np.concatenate([endpoint_weight, endpoint_weight, opposite_weight]),
            (
                np.concatenate([np.arange(num_edges), np.arange(num_edges), side_edge]),
                np.concatenate([edges[:, 0], edges[:, 1], opposite_vertex]),
            ),
        ),
        shape=(num_edges, num_vertices),
    )


def _edge_midpoint_rows(edges: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """``[E, V]`` rows placing each new vertex at the midpoint of its edge ``edges [E, 2]``."""
    rows = np.repeat(np.arange(len(edges)), 2)
    return sp.csr_matrix((np.full(rows.shape, 0.5), (rows, edges.ravel())), shape=(len(edges), num_vertices))


def _split_faces(faces: np.ndarray, face_edge_index: np.ndarray, num_vertices: int) -> np.ndarray:
    """``[4F, 3]``: each face ``(a, b, c)`` split into four at its edge vertices (see module doc)."""
    a, b, c = faces.T
    ab, bc, ca = (face_edge_index + num_vertices).T
    children = np.stack(
        [
            np.stack([a, ab, ca], axis=1),
            np.stack([ab, b, bc], axis=1),
            np.stack([ca, bc, c], axis=1),
            np.stack([ab, bc, ca], axis=1),
        ],
        axis=1,
    )  # [F, 4, 3]
    return children.reshape(-1, 3)
