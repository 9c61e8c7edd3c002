"""Midpoint subdivision levels as the OMG-Avatar release builds them (pytorch3d's
``SubdivideMeshes``), on our :mod:`core.geometry.subdivision` operators.

Vertices and per-vertex features: one new vertex per undirected edge, edges in lexicographic
``(low, high)`` order, appended after the old vertices, each the mean of its edge's ends; this is
our ``"midpoint"`` scheme, applied one level at a time (bit-identical to the release's means).

Faces: each face ``(v0, v1, v2)`` with edge midpoints ``m01, m12, m20`` becomes
``(v0, m01, m20)``, ``(v1, m12, m01)``, ``(v2, m20, m12)``, ``(m12, m20, m01)``, in blocks (every
face's first child, then every second child, ...), not interleaved as in
:func:`core.geometry.subdivision.subdivision_step`. The release's quirk: its subdivider keeps
the level-1 faces it computed once from the template, so every level above 0 carries the
level-1 faces (the level-2 mesh has the right vertices but references only the first ``V_1``
of them). Depth maps drawn from it are therefore the same at levels 1 and 2.
"""

from __future__ import annotations

import numpy as np
import torch

from core.geometry.mesh import unique_edges, validated_faces
from core.geometry.subdivision import build_lod


def blocked_midpoint_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """``[4F, 3]`` int64 level-1 faces of ``faces [F, 3]`` in the release's block order."""
    faces = validated_faces(faces, num_vertices)
    _, face_edge_index = unique_edges(faces)  # side j joins corners j and j + 1
    m01, m12, m20 = (face_edge_index + num_vertices).T
    v0, v1, v2 = faces.T
    blocks = [(v0, m01, m20), (v1, m12, m01), (v2, m20, m12), (m12, m20, m01)]
    return np.concatenate([np.stack(block, axis=1) for block in blocks])


class ReleaseSubdivision:
    """Levels 0..``levels`` of a template topology, subdivided the release's way.

    Attributes:
        num_vertices: ``V_l`` per level (FLAME: 5,023, 20,018, 79,936).
    """

    def __init__(self, faces: np.ndarray, num_vertices: int, levels: int = 2) -> None:
        hierarchy = build_lod(faces, num_vertices, levels, "midpoint")
        self.num_vertices = hierarchy.num_vertices
        self._steps = hierarchy.steps
        self._faces = [hierarchy.faces[0]]
        if levels >= 1:
            self._faces.append(blocked_midpoint_faces(hierarchy.faces[0], num_vertices))

    @property
    def levels(self) -> int:
        return len(self._steps)

    def faces(self, level: int) -> np.ndarray:
        """``[F, 3]`` int64 faces the release's level-``level`` mesh carries: the template's
        at level 0, the level-1 faces at every level above (the quirk)."""
        self._check(level)
        return self._faces[min(level, 1)]

    def refine(self, values: torch.Tensor, level: int) -> torch.Tensor:
        """Per-vertex values of the template refined to ``level``, one level at a time.

        Args:
            values: [B, V_0, C] or [V_0, C] (positions or features), float32 or float64.

        Returns:
            [B, V_level, C] or [V_level, C]; the first ``V_l`` rows of level ``l + 1`` are level
            ``l``'s.
        """
        self._check(level)
        for step in self._steps[:level]:
            values = step(values)
        return values

    def _check(self, level: int) -> None:
        if not 0 <= level <= self.levels:
            raise ValueError(f"level {level} is outside 0..{self.levels}")
