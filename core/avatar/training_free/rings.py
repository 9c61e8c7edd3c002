"""Meshes made of concentric rings: the topology of the shell, the neck, the eyes and the mouth.

A ring is a closed loop of vertices ordered by a loop parameter ``u`` in [0, 1). Two
rings are joined by a zipper that only looks at ``u``, never at positions, so a layout
built from fixed ring sizes has the same topology whatever the geometry.

Winding: with rings running counter-clockwise seen from the side the normals should
face, and the "inner" ring on the side of the centre (of a disk) or of the face (for the
shell), :func:`zipper` and :func:`disk` make triangles that are counter-clockwise from that side.
"""

from __future__ import annotations

import numpy as np


def ring_parameter(count: int, offset: float = 0.5) -> np.ndarray:
    """[count] evenly spaced loop parameters ``(k + offset) / count``."""
    return (np.arange(count) + offset) / count


def zipper(inner: np.ndarray, inner_u: np.ndarray, outer: np.ndarray, outer_u: np.ndarray) -> list[tuple]:
    """Triangles joining two closed rings of vertex ids ordered by increasing ``u``.

    Walks both rings at once, always advancing along the ring whose next vertex has the
    smaller ``u``; the inner ring's edges are traversed backwards (its other side, the
    inner ring's own neighbours, traverses them forwards). Makes ``len(inner) + len(outer)``
    triangles.
    """
    triangles = []
    i = j = 0
    n, m = len(inner), len(outer)
    while i < n or j < m:
        next_inner = inner_u[(i + 1) % n] + (i + 1) // n
        next_outer = outer_u[(j + 1) % m] + (j + 1) // m
        if j == m or (i < n and next_inner <= next_outer):
            triangles.append((inner[(i + 1) % n], inner[i % n], outer[j % m]))
            i += 1
        else:
            triangles.append((outer[j % m], outer[(j + 1) % m], inner[i % n]))
            j += 1
    return triangles


def disk(counts: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A disk: a centre vertex (id 0) and rings of ``counts`` vertices around it.

    Returns:
        faces: [F, 3] int64, counter-clockwise seen from where the rings run counter-clockwise.
        radius: [V] ring number of each vertex divided by the number of rings (0 at the
            centre, 1 on the rim).
        u: [V] loop parameter of each vertex (0 for the centre).
    """
    faces: list[tuple] = []
    radius, u = [0.0], [0.0]
    inner, inner_u = None, None
    for ring, count in enumerate(counts, start=1):
        ids = len(radius) + np.arange(count)
        ids_u = ring_parameter(count, offset=0.5 * (ring % 2))
        if inner is None:
            faces.extend((0, ids[k], ids[(k + 1) % count]) for k in range(count))
        else:
            faces.extend(zipper(inner, inner_u, ids, ids_u))
        radius.extend([ring / len(counts)] * count)
        u.extend(ids_u)
        inner, inner_u = ids, ids_u
    return np.array(faces, dtype=np.int64), np.array(radius), np.array(u)


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """``3x^2 - 2x^3`` of ``x`` clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
