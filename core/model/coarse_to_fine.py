"""Coarse to fine (eq. 3): F_global at level k + 1 is ``subdivide(Phi_k(F_global at level k))``,
with the subdivision operator that refines the vertices themselves, so a new edge vertex's
feature blends its neighbours' the way its position does."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from core.geometry.subdivision import SparseOperator


class CoarseToFine(nn.Module):
    """The MLPs Phi_0 .. Phi_{K-1} on C-dim per-vertex features."""

    def __init__(self, levels: int, feature_dim: int) -> None:
        super().__init__()
        self.phi = nn.ModuleList(
            nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.GELU(), nn.Linear(feature_dim, feature_dim))
            for _ in range(levels)
        )

    def forward(self, features: Tensor, steps: Sequence[SparseOperator], up_to: int) -> list[Tensor]:
        """F_global [B, V_0, C] at level 0 -> [F_global at level k, [B, V_k, C], for k = 0..up_to].

        ``steps[k]`` maps level k to level k + 1 (:attr:`LodHierarchy.steps`).
        """
        if not 0 <= up_to <= len(self.phi):
            raise ValueError(f"level {up_to} is outside 0..{len(self.phi)}")
        levels = [features]
        for phi, step in zip(self.phi[:up_to], steps[:up_to], strict=True):
            levels.append(step(phi(levels[-1])))
        return levels
