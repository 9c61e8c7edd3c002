"""The chain of subdivision steps from a control mesh to every level of detail.

:func:`core.geometry.subdivision.build_lod` also composes the operators from level 0 to
every level, which an avatar never needs: it only refines level by level (positions
each frame, colours and weights once). Building only the steps costs about a third.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.geometry.subdivision import Scheme, SparseOperator, subdivision_step


@dataclass(frozen=True)
class LevelChain:
    """Levels 0..L of a subdivided control mesh.

    Attributes:
        faces: ``faces[l]`` [F_l, 3] int64.
        num_vertices: ``V_l`` for every level.
        steps: ``steps[l]`` maps level l to level l + 1, ``[V_{l+1}, V_l]``.
    """

    faces: tuple[np.ndarray, ...]
    num_vertices: tuple[int, ...]
    steps: tuple[SparseOperator, ...]

    def refine(self, values: np.ndarray | torch.Tensor, level: int, start: int = 0) -> np.ndarray | torch.Tensor:
        """Per-vertex ``values`` [V_start, ...] of level ``start`` refined to ``level``."""
        for step in self.steps[start:level]:
            values = step(values)
        return values


def subdivide(faces: np.ndarray, num_vertices: int, levels: int, scheme: Scheme) -> LevelChain:
    """Subdivide a control mesh ``faces`` [F, 3] of ``num_vertices`` vertices ``levels`` times."""
    all_faces, counts, steps = [np.asarray(faces, dtype=np.int64)], [num_vertices], []
    for _ in range(levels):
        operator, next_faces = subdivision_step(all_faces[-1], counts[-1], scheme)
        steps.append(SparseOperator(operator))
        all_faces.append(next_faces)
        counts.append(operator.shape[0])
    return LevelChain(tuple(all_faces), tuple(counts), tuple(steps))
