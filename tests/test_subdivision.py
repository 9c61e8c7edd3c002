"""Loop / midpoint subdivision operators (core.geometry.subdivision), checked against trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from core.geometry.mesh import edge_face_counts, unique_edges
from core.geometry.subdivision import build_lod, subdivision_step
from timing import typical_seconds_each

SCHEMES = ("loop", "midpoint")


# ----------------------------------------------------------------------------- test meshes


def _perturbed(vertices: np.ndarray, seed: int) -> np.ndarray:
    """Vertices moved radially by up to 10 %, so that no two refined vertices coincide."""
    rng = np.random.default_rng(seed)
    return vertices * rng.uniform(0.9, 1.1, size=(len(vertices), 1))


def closed_sphere() -> tuple[np.ndarray, np.ndarray]:
    """Perturbed icosphere: 162 vertices (valences 5 and 6), 320 faces, no boundary."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    return _perturbed(sphere.vertices, seed=0), np.asarray(sphere.faces)


def open_tube(rings: int = 6, segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Perturbed cylinder without caps: two boundary loops, every vertex referenced."""
    angle = 2 * np.pi * np.arange(segments) / segments
    vertices = np.array([[np.cos(a), np.sin(a), 0.4 * r] for r in range(rings) for a in angle])
    faces = []
    for r in range(rings - 1):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            c, d = a + segments, b + segments
            faces += [(a, b, d), (a, d, c)]
    return _perturbed(vertices, seed=1), np.array(faces)


def holed_sphere(num_holes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Perturbed icosphere with single-triangle holes whose vertices share no edge across holes."""
    vertices, faces = closed_sphere()
    neighbours = trimesh.Trimesh(vertices, faces, process=False).vertex_neighbors
    blocked: set[int] = set()
    removed = []
    for f in np.random.default_rng(2).permutation(len(faces)):
        if len(removed) == num_holes:
            break
        if blocked.isdisjoint(faces[f]):
            removed.append(f)
            blocked.update(int(n) for v in faces[f] for n in (v, *neighbours[v]))
    return vertices, np.delete(faces, removed, axis=0)


MESHES = {"closed_sphere": closed_sphere, "open_tube": open_tube, "holed_sphere": holed_sphere}
BOUNDARY_MESHES = ("open_tube", "holed_sphere")


def _assert_trimesh_boundary_rule_is_standard(faces: np.ndarray) -> None:
    """trimesh treats every boundary neighbour of a boundary vertex as a boundary-edge neighbour;
    that agrees with the standard rule only if no interior edge joins two boundary vertices."""
    edges, face_edge_index = unique_edges(faces)
    counts = edge_face_counts(face_edge_index, len(edges))
    on_boundary = np.zeros(faces.max() + 1, dtype=bool)
    on_boundary[edges[counts == 1].ravel()] = True
    assert not on_boundary[edges[counts == 2]].all(axis=1).any()


def _reference_index(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[N]``: for each reference vertex, the index of our vertex at the same place (within 1e-6)."""
    distance, index = cKDTree(ours).query(reference)
    assert len(ours) == len(reference)
    assert distance.max() < 1e-6
    assert len(np.unique(index)) == len(ours), "vertex matching is not one-to-one"
    return index


def _face_set(faces: np.ndarray) -> set[tuple[int, int, int]]:
    """Faces as a set of triangles, each rotated to start at its smallest index (keeps orientation)."""
    start = faces.argmin(axis=1)[:, None]
    rotated = np.take_along_axis(faces, (start + np.arange(3)) % 3, axis=1)
    return set(map(tuple, rotated.tolist()))


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("mesh", MESHES)
def test_every_operator_row_sums_to_one(mesh: str, scheme: str) -> None:
    vertices, faces = MESHES[mesh]()
    lod = build_lod(faces, len(vertices), levels=3, scheme=scheme)
    for op in (*lod.steps, *lod.from_base):
        np.testing.assert_allclose(np.asarray(op.matrix.sum(axis=1)).ravel(), 1.0, atol=1e-12)
        assert op.matrix.min() >= 0.0  # convex combinations: LBS weights stay in [0, 1]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("mesh", MESHES)
def test_one_level_gives_v_plus_e_vertices_and_4f_faces(mesh: str, scheme: str) -> None:
    vertices, faces = MESHES[mesh]()
    num_edges = len(trimesh.Trimesh(vertices, faces, process=False).edges_unique)
    lod = build_lod(faces, len(vertices), levels=2, scheme=scheme)
    assert lod.num_vertices[1] == len(vertices) + num_edges
    assert lod.faces[1].shape == (4 * len(faces), 3)
    assert lod.faces[2].shape == (16 * len(faces), 3)
    assert lod.from_base[2].shape == (lod.num_vertices[2], len(vertices))
    assert lod.faces[2].max() == lod.num_vertices[2] - 1


def test_composed_operator_equals_applying_each_step() -> None:
    vertices, faces = holed_sphere()
    lod = build_lod(faces, len(vertices), levels=3)
    stepped = vertices
    for step in lod.steps:
        stepped = step(stepped)
    np.testing.assert_allclose(lod.apply(3, vertices), stepped, atol=1e-12)


# ----------------------------------------------------------------------------- Loop vs trimesh


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("mesh", MESHES)
def test_loop_matches_trimesh(mesh: str, levels: int) -> None:
    vertices, faces = MESHES[mesh]()
    if mesh in BOUNDARY_MESHES:
        _assert_trimesh_boundary_rule_is_standard(faces)
    ref_vertices, ref_faces = trimesh.remesh.subdivide_loop(vertices, faces, iterations=levels)

    lod = build_lod(faces, len(vertices), levels=levels, scheme="loop")
    ours = lod.apply(levels, vertices)

    ours_of_ref = _reference_index(ours, ref_vertices)
    np.testing.assert_array_equal(ours_of_ref[: len(vertices)], np.arange(len(vertices)))  # old vertices first
    assert _face_set(ours_of_ref[ref_faces]) == _face_set(lod.faces[levels])


def test_loop_stencils_on_a_regular_vertex_and_a_boundary_corner() -> None:
    """Interior valence 6: 5/8 self, 1/16 per neighbour. A boundary vertex takes 3/4 self and
    1/8 per boundary-edge neighbour only, even when an interior edge reaches another boundary
    vertex (the case where trimesh's rule differs)."""
    hexagon = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5], [0, 5, 6], [0, 6, 1]])
    op, _ = subdivision_step(hexagon, num_vertices=7)
    np.testing.assert_allclose(op[0].toarray().ravel(), [5 / 8] + [1 / 16] * 6)
    # Rim vertex 1: boundary neighbours 2 and 6; the interior edge to the centre 0 gets nothing.
    np.testing.assert_allclose(op[1].toarray().ravel(), [0, 3 / 4, 1 / 8, 0, 0, 0, 1 / 8])

    quad = np.array([[0, 1, 2], [0, 2, 3]])  # diagonal 0-2 is interior, all four vertices on the boundary
    op, _ = subdivision_step(quad, num_vertices=4)
    np.testing.assert_allclose(op[0].toarray().ravel(), [3 / 4, 1 / 8, 0, 1 / 8])
    edges, _ = unique_edges(quad)
    diagonal = 4 + int(np.flatnonzero((edges == [0, 2]).all(axis=1))[0])
    np.testing.assert_allclose(op[diagonal].toarray().ravel(), [3 / 8, 1 / 8, 3 / 8, 1 / 8])


def test_unreferenced_vertices_pass_through() -> None:
    vertices, faces = closed_sphere()
    with_loose = np.vstack([vertices, [[5.0, 6.0, 7.0]]])
    lod = build_lod(faces, len(with_loose), levels=2)
    refined = lod.apply(2, with_loose)
    np.testing.assert_array_equal(refined[len(vertices)], [5.0, 6.0, 7.0])
    without_loose = build_lod(faces, len(vertices), levels=2).apply(2, vertices)
    np.testing.assert_allclose(np.delete(refined, len(vertices), axis=0), without_loose)


def test_non_manifold_edge_raises() -> None:
    fin = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])  # edge 0-1 shared by three faces
    with pytest.raises(ValueError, match="more than two faces"):
        subdivision_step(fin, num_vertices=5)


def test_vertex_on_four_boundary_edges_raises() -> None:
    bowtie = np.array([[0, 1, 2], [0, 3, 4]])  # two triangles touching at vertex 0
    with pytest.raises(ValueError, match="boundary edges"):
        subdivision_step(bowtie, num_vertices=5)


def test_bad_faces_raise() -> None:
    with pytest.raises(ValueError, match="outside"):
        subdivision_step(np.array([[0, 1, 3]]), num_vertices=3)
    with pytest.raises(ValueError, match="repeat a vertex"):
        subdivision_step(np.array([[0, 1, 1]]), num_vertices=3)
    with pytest.raises(ValueError, match="scheme"):
        subdivision_step(np.array([[0, 1, 2]]), num_vertices=3, scheme="butterfly")


# ----------------------------------------------------------------------------- midpoint


@pytest.mark.parametrize("mesh", MESHES)
def test_midpoint_puts_new_vertices_at_edge_midpoints(mesh: str) -> None:
    vertices, faces = MESHES[mesh]()
    op, new_faces = subdivision_step(faces, len(vertices), scheme="midpoint")
    refined = op @ vertices
    edges, _ = unique_edges(faces)
    np.testing.assert_array_equal(refined[: len(vertices)], vertices)
    np.testing.assert_allclose(refined[len(vertices) :], vertices[edges].mean(axis=1), atol=1e-15)
    # Face f splits into faces 4f..4f+3, each a quarter of it with the same orientation.
    parent_normals = trimesh.triangles.cross(vertices[faces])
    child_normals = trimesh.triangles.cross(refined[new_faces]).reshape(len(faces), 4, 3)
    np.testing.assert_allclose(child_normals, np.repeat(parent_normals[:, None] / 4, 4, axis=1), atol=1e-12)


# ----------------------------------------------------------------------------- kinds of input


def test_torch_gradient_flows_to_the_dense_input() -> None:
    icosahedron = trimesh.creation.icosphere(subdivisions=0)  # 12 vertices
    lod = build_lod(icosahedron.faces, 12, levels=2)
    single = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)
    batched = torch.randn(3, 12, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: lod.apply(2, x), (single,))
    assert torch.autograd.gradcheck(lambda x: lod.apply(2, x), (batched,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_batched_matches_per_item_and_numpy(dtype: torch.dtype) -> None:
    vertices, faces = holed_sphere()
    lod = build_lod(faces, len(vertices), levels=2)
    features = torch.randn(4, len(vertices), 8, dtype=dtype)
    batched = lod.apply(2, features)
    assert batched.shape == (4, lod.num_vertices[2], 8) and batched.dtype == dtype
    for item in range(4):
        torch.testing.assert_close(batched[item], lod.apply(2, features[item]))
        expected = lod.apply(2, features[item].numpy().astype(np.float64))
        np.testing.assert_allclose(batched[item].numpy(), expected, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_numpy_keeps_float_dtype_and_trailing_shape() -> None:
    vertices, faces = closed_sphere()
    lod = build_lod(faces, len(vertices), levels=1)
    per_vertex_matrices = np.random.default_rng(3).normal(size=(len(vertices), 2, 3)).astype(np.float32)
    refined = lod.apply(1, per_vertex_matrices)
    assert refined.dtype == np.float32 and refined.shape == (lod.num_vertices[1], 2, 3)
    np.testing.assert_allclose(refined[:, 1, :], lod.apply(1, per_vertex_matrices[:, 1, :]))
    assert lod.apply(1, np.ones(len(vertices), dtype=np.int32)).dtype == np.float64
    with pytest.raises(ValueError, match="vertices"):
        lod.apply(1, np.ones((len(vertices) + 1, 3)))


@pytest.mark.parametrize("mesh", BOUNDARY_MESHES)
def test_lbs_weights_still_sum_to_one(mesh: str) -> None:
    vertices, faces = MESHES[mesh]()
    weights = np.random.default_rng(4).dirichlet(np.ones(5), size=len(vertices))  # [V, 5]
    lod = build_lod(faces, len(vertices), levels=2)
    for refined in (lod.apply(2, weights), lod.apply(2, torch.from_numpy(weights)).numpy()):
        assert refined.shape == (lod.num_vertices[2], 5)
        np.testing.assert_allclose(refined.sum(axis=1), 1.0, atol=1e-12)
        assert refined.min() >= 0.0


# ----------------------------------------------------------------------------- speed


def test_level_two_positions_take_under_5_ms() -> None:
    """Refining [5000, 3] float32 positions to 80,000 vertices with the composed level-2 operator.

    The per-frame path is torch (FLAME's posed vertices are torch tensors); it is asserted.
    The numpy/scipy path is measured and printed, and must stay under the same bound.
    """
    torus = trimesh.creation.torus(1.0, 0.3, major_sections=100, minor_sections=50)
    assert build_lod(torus.faces, len(torus.vertices), levels=2).num_vertices == (5000, 20000, 80000)
    torch_s, scipy_s = typical_seconds_each(
        """
        import numpy as np, torch, trimesh
        from core.geometry.subdivision import build_lod
        torus = trimesh.creation.torus(1.0, 0.3, major_sections=100, minor_sections=50)
        lod = build_lod(torus.faces, len(torus.vertices), levels=2)
        positions = np.asarray(torus.vertices, dtype=np.float32)
        positions_torch = torch.from_numpy(positions)
        """,
        ["lod.apply(2, positions_torch)", "lod.apply(2, positions)"],
    )
    print(f"level-2 operator on [5000, 3] float32 -> 80,000 vertices: torch {1e3 * torch_s:.2f} ms, "
          f"scipy {1e3 * scipy_s:.2f} ms")  # fmt: skip
    assert torch_s < 0.005
    assert scipy_s < 0.005
