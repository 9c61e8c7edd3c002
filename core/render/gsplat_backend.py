"""The CUDA backend: gsplat's fused rasteriser (the paper's renderer), differentiable.

Only for CUDA devices: ``gsplat.rasterization`` compiles CUDA kernels on first use and
fails without CUDA, so callers check :func:`cuda_available` first (``render`` does).
Its rules differ slightly from :mod:`core.render.constants` (see there).
"""

from __future__ import annotations

import torch

from core.geometry.camera import Camera
from core.render.constants import LOW_PASS, NEAR_PLANE
from core.render.gaussians import Gaussians
from core.render.output import Background, RenderOutput, background_tensor


def cuda_available() -> bool:
    return torch.cuda.is_available()


def render_gsplat(
    gaussians: Gaussians, camera: Camera, background: Background = 0.0, covariances: torch.Tensor | None = None
) -> RenderOutput:
    """Render on CUDA (Gaussians elsewhere are moved there). Returns float32 CUDA tensors.
    ``covariances``: [N, 3, 3] world covariances drawn instead of the quaternions' and scales'
    (gsplat's ``covars``)."""
    from gsplat import rasterization  # imported here: the module is usable without gsplat's CUDA build

    device = gaussians.device if gaussians.device.type == "cuda" else torch.device("cuda")
    gaussians = gaussians.to(device=device, dtype=torch.float32)
    channels = gaussians.num_channels
    bg = background_tensor(background, channels, torch.float32, device)
    if len(gaussians) == 0:
        shape = (camera.height, camera.width)
        zeros = torch.zeros(shape, dtype=torch.float32, device=device)
        return RenderOutput(bg.expand(*shape, channels).clone(), zeros, zeros.clone())
    viewmats, Ks = camera.to_gsplat(device=device, dtype=torch.float32)
    if covariances is not None:
        covariances = covariances.to(device=device, dtype=torch.float32)
    colors, alphas, _ = rasterization(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.features,
        viewmats,
        Ks,
        camera.width,
        camera.height,
        near_plane=NEAR_PLANE,
        eps2d=LOW_PASS,
        backgrounds=bg[None],
        render_mode="RGB+ED",
        rasterize_mode="classic",
        channel_chunk=channels + 1,
        covars=covariances,
    )
    return RenderOutput(colors[0, ..., :channels], alphas[0, ..., 0], colors[0, ..., channels])
