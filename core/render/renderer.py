"""``render``: one call, three backends (gsplat on CUDA, the compiled CPU rasteriser, the
differentiable torch reference), the same rules and outputs."""

from __future__ import annotations

from torch import Tensor

from core.errors import OmgError
from core.geometry.camera import Camera
from core.render.cpu import render_cpu
from core.render.gaussians import Gaussians
from core.render.gsplat_backend import cuda_available, render_gsplat
from core.render.kernels import host_backend
from core.render.output import Background, RenderOutput
from core.render.profiling import StageTimer
from core.render.reference import render_reference

BACKENDS = ("auto", "gsplat", "cpu", "reference")


class RenderBackendError(OmgError):
    """The requested rendering backend is unknown or cannot run on this machine."""


def available_backends() -> list[str]:
    """The concrete backends this machine can run, fastest first."""
    return (["gsplat"] if cuda_available() else []) + ["cpu", "reference"]


def fastest_backend() -> str:
    """What ``auto`` means now: gsplat with CUDA, else the cpu backend, or the torch reference
    while the cpu kernels compile in the background (see :mod:`core.render.kernels`)."""
    return "gsplat" if cuda_available() else host_backend()


def resolve_backend(backend: str) -> str:
    """``backend`` with ``auto`` replaced by :func:`fastest_backend`; raises
    :class:`RenderBackendError` for unknown or unavailable backends."""
    if backend not in BACKENDS:
        raise RenderBackendError(f"unknown render backend '{backend}': choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return fastest_backend()
    if backend not in available_backends():
        raise RenderBackendError(f"render backend '{backend}' needs a CUDA GPU, and torch sees none")
    return backend


def render(
    gaussians: Gaussians,
    camera: Camera,
    backend: str = "auto",
    background: Background = 0.0,
    timer: StageTimer | None = None,
    covariances: Tensor | None = None,
) -> RenderOutput:
    """Render ``gaussians`` through ``camera``.

    Args:
        gaussians: N Gaussians with C feature channels.
        camera: the view; its width and height set the image size.
        backend: ``auto`` (:func:`fastest_backend`), ``gsplat``, ``cpu`` or ``reference``.
            Only gsplat and reference are differentiable; the cpu backend refuses inputs that
            require gradients, so ``auto`` never silently drops them on a CPU-only machine.
        background: one value, or C values, composited behind the Gaussians.
        timer: collects seconds per stage (projection, sorting, blending); not for gsplat,
            whose stages are fused.
        covariances: [N, 3, 3] world covariances to draw instead of the quaternions' and
            scales' (e.g. :func:`~core.render.projection.drawn_covariance` of raw quaternions);
            gsplat and reference only: the cpu backend takes unit quaternions and scales
            (convert with :func:`core.model.release_gaussians.drawn_rotations`).

    Returns:
        features [H, W, C], alpha [H, W] and expected depth [H, W] (0 where alpha is 0).
    """
    backend = resolve_backend(backend)
    if backend == "gsplat":
        return render_gsplat(gaussians, camera, background, covariances)
    if backend == "cpu":
        if covariances is not None:
            raise RenderBackendError("the cpu backend draws quaternions and scales, not covariances: use drawn_rotations")
        return render_cpu(gaussians, camera, background, timer)
    return render_reference(gaussians, camera, background, timer, covariances)
