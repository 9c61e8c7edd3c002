"""The MediaPipe face mesh as a triangle mesh, and the landmark groups the method uses.

MediaPipe ships its tessellation only as the undirected edges of its canonical face
model (``FACEMESH_TESSELATION``), not as triangles. :func:`face_triangles` recovers the
852 triangles: every triangle is a 3-clique of that edge graph; two 3-cliques are not
triangles (they close a loop around a vertex without being a face), and they are
exactly the cliques whose three edges would each be shared by three triangles. The
recovered mesh is a disk with three holes (eyes and mouth): V - E + F = 468 - 1322 + 852
= -2, four boundary loops. Triangles are wound consistently, counter-clockwise seen
from the front of the face in head space (+z towards the viewer).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from mediapipe.python.solutions import face_mesh_connections

from core.geometry.mesh import unique_edges

#: Mesh vertices (without the 10 iris points that follow them among the 478 landmarks).
NUM_MESH_POINTS = 468
#: All refined landmarks: mesh points and irises.
NUM_LANDMARKS = 478
#: Iris centres (subject's right, subject's left).
IRIS_CENTRES = (468, 473)
#: Eye corners (outer, inner) of the subject's right and left eye.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)
#: Mouth corners (subject's right, left), inner-lip midpoints (upper, lower), chin.
MOUTH_CORNERS = (61, 291)
INNER_LIP_MIDPOINTS = (13, 14)
CHIN = 152
#: One edge of the face oval in MediaPipe's order (``FACEMESH_FACE_OVAL``), which runs
#: clockwise seen from the front: forehead top, then towards the subject's left.
OVAL_CLOCKWISE_EDGE = (10, 338)
#: Forehead top on the midline (the face oval's highest point).
FOREHEAD_TOP = 10
#: Widest points of the face oval (subject's right, left), in front of the ears.
CHEEK_EXTREMES = (234, 454)

@dataclass(frozen=True)
class FaceTopology:
    """The face mesh's connectivity.

    Attributes:
        triangles: [852, 3] int64 vertex indices into the 468 mesh points.
        oval: [36] the outer boundary loop (the face oval), counter-clockwise seen from the
            front, starting at the forehead top.
        right_eye, left_eye: [16] the eye openings' boundary loops (subject's sides),
            clockwise seen from the front.
        mouth: [20] the inner-lip boundary loop, clockwise seen from the front.
    """

    triangles: np.ndarray
    oval: np.ndarray
    right_eye: np.ndarray
    left_eye: np.ndarray
    mouth: np.ndarray


@functools.lru_cache(maxsize=1)
def face_topology() -> FaceTopology:
    """The face mesh's triangles and boundary loops (computed once per process)."""
    triangles = _oriented(_triangles_from_edges())
    loops = _boundary_loops(triangles)
    oval, right_eye, left_eye, mouth = (
        next(loop for loop in loops if member in loop) for member in (CHIN, 33, 263, 13)
    )
    oval = np.roll(oval, -int(np.flatnonzero(oval == FOREHEAD_TOP)[0]))
    return FaceTopology(triangles, oval, right_eye, left_eye, mouth)


def _triangles_from_edges() -> np.ndarray:
    """[852, 3] the tessellation's triangles (see the module docstring), unoriented."""
    edges = {tuple(sorted(edge)) for edge in face_mesh_connections.FACEMESH_TESSELATION}
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    cliques = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]})
    cliques = np.array(cliques, dtype=np.int64)
    _, face_edge_index = unique_edges(cliques)
    faces_per_edge = np.bincount(face_edge_index.ravel())
    not_a_face = (faces_per_edge[face_edge_index] == 3).all(axis=1)
    return cliques[~not_a_face]


def _oriented(triangles: np.ndarray) -> np.ndarray:
    """``triangles`` [F, 3] re-wound consistently (every shared edge traversed both ways
    by its two triangles) and counter-clockwise seen from the front of the face.

    MediaPipe lists the face oval's edges in order, clockwise seen from the front (from
    the subject's right over the forehead to their left); a counter-clockwise disk
    traverses its outer boundary the other way, which fixes the overall sign.
    """
    triangles = triangles.copy()
    faces_of_edge: dict[tuple[int, int], list[int]] = defaultdict(list)
    for f, (a, b, c) in enumerate(triangles):
        for edge in ((a, b), (b, c), (c, a)):
            faces_of_edge[tuple(sorted(edge))].append(f)
    oriented = np.zeros(len(triangles), dtype=bool)
    oriented[0] = True
    stack = [0]
    while stack:
        f = stack.pop()
        for u, v in _directed_sides(triangles[f]):
            for g in faces_of_edge[tuple(sorted((u, v)))]:
                if not oriented[g]:
                    if (u, v) in _directed_sides(triangles[g]):  # must be traversed v -> u
                        triangles[g] = triangles[g][::-1]
                    oriented[g] = True
                    stack.append(g)
    clockwise_start, clockwise_next = OVAL_CLOCKWISE_EDGE
    holder = faces_of_edge[tuple(sorted(OVAL_CLOCKWISE_EDGE))][0]
    if (clockwise_start, clockwise_next) in _directed_sides(triangles[holder]):
        triangles = triangles[:, ::-1]
    return np.ascontiguousarray(triangles)


def _directed_sides(triangle: np.ndarray) -> list[tuple[int, int]]:
    a, b, c = (int(v) for v in triangle)
    return [(a, b), (b, c), (c, a)]


def _boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """The boundary loops of consistently wound ``triangles`` [F, 3], each ordered as its
    triangles traverse it (counter-clockwise around the outside of a counter-clockwise
    disk, clockwise around its holes)."""
    sides = {side for triangle in triangles for side in _directed_sides(triangle)}
    following = {a: b for a, b in sides if (b, a) not in sides}
    loops, seen = [], set()
    for start in sorted(following):
        if start in seen:
            continue
        loop = [start]
        while following[loop[-1]] != start:
            loop.append(following[loop[-1]])
        seen.update(loop)
        loops.append(np.array(loop, dtype=np.int64))
    return loops
