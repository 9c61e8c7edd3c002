"""Damped least squares: Levenberg-Marquardt with Marquardt's diagonal scaling and a
quadratic prior, over a caller's linearisation (used by the FLAME fitter)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: Damping floor, damping raises per iteration before giving up, and the relative cost
#: decrease below which the solve counts as converged.
MIN_DAMPING, MAX_DAMPING_RAISES, CONVERGED = 1e-9, 8, 1e-4


@dataclass(frozen=True)
class NormalEquations:
    """A linearisation at ``x`` [D]: ``J^T J`` [D, D], ``J^T r`` [D], ``|r|^2``, and the
    residual [R] as a function of new parameters [D] (whatever the linearisation chose,
    such as correspondences, held fixed)."""

    JtJ: Tensor
    Jtr: Tensor
    residual_sq: float
    residual_at: Callable[[Tensor], Tensor]


def levenberg_marquardt(x: Tensor, linearize: Callable[[Tensor], NormalEquations], prior: Tensor,
                        iterations: int, damping: float, free: Tensor | None = None) -> Tensor:  # fmt: skip
    """Minimise ``|r(x)|^2 + sum(prior * x^2)`` from ``x`` [D] with Marquardt's diagonal
    damping, over the ``free`` parameters [D] (bool; all when None).

    Each iteration linearises once, then raises the damping until a step lowers the cost.
    The loop ends early once the cost changes by less than :data:`CONVERGED` (relative) or
    no step lowers it: the solve has converged.

    Args:
        x: [D] the start.
        linearize: ``x`` [D] -> its :class:`NormalEquations`.
        prior: [D] weights of the quadratic prior (0 leaves a parameter free).
        iterations: most linearisations.
        damping: the initial damping (relative to the diagonal of the normal equations).

    Returns:
        [D] the solution.
    """
    free = torch.ones_like(x, dtype=torch.bool) if free is None else free
    for _ in range(iterations):
        system = linearize(x)
        hessian = (system.JtJ + torch.diag(prior))[free][:, free]
        gradient = (system.Jtr + prior * x)[free]
        cost = system.residual_sq + float((prior * x * x).sum())
        scaling = torch.diag(hessian.diagonal().clamp_min(1e-12))
        for _ in range(MAX_DAMPING_RAISES):
            candidate = x.clone()
            candidate[free] += torch.linalg.solve(hessian + damping * scaling, -gradient)
            residual = system.residual_at(candidate)
            new_cost = float(residual @ residual + (prior * candidate * candidate).sum())
            if new_cost < cost:
                x, damping = candidate, max(damping / 10.0, MIN_DAMPING)
            if new_cost < cost or abs(new_cost - cost) <= CONVERGED * cost:
                break
            damping *= 10.0
        if abs(new_cost - cost) <= CONVERGED * cost or new_cost >= cost:
            break
    return x
