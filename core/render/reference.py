"""The differentiable reference rasteriser, in plain torch.

It is the oracle the other backends are tested against and the backend of CPU training
smoke runs (autograd flows to every Gaussian attribute). It follows
:mod:`core.render.constants` literally: every (pixel, Gaussian) pair inside a Gaussian's
footprint box is enumerated, pairs outside the 3-sigma ellipse or below the minimum
alpha are dropped, the rest are ordered front to back per pixel and composited with the
exclusive early stop. Per-pixel transmittance is a segmented cumulative sum of
``log(1 - alpha)`` in float64, so no Python loop runs over Gaussians or pixels; rows are
processed in bands to bound memory.
"""

from __future__ import annotations

import math

import torch

from core.geometry.camera import Camera
from core.render.constants import ALPHA_MAX, ALPHA_MIN, MAX_POWER, TRANSMITTANCE_MIN
from core.render.gaussians import Gaussians
from core.render.output import Background, RenderOutput, background_tensor
from core.render.profiling import StageTimer, stage
from core.render.projection import project_gaussians

#: Image rows composited together; bounds the number of live (pixel, Gaussian) pairs.
ROW_BAND = 32

_LOG_TRANSMITTANCE_MIN = math.log(TRANSMITTANCE_MIN)


def render_reference(
    gaussians: Gaussians,
    camera: Camera,
    background: Background = 0.0,
    timer: StageTimer | None = None,
    covariances: torch.Tensor | None = None,
) -> RenderOutput:
    """Render ``gaussians`` through ``camera``; differentiable. See :class:`RenderOutput`.
    ``covariances``: [N, 3, 3] world covariances drawn instead of the quaternions' and scales'."""
    width, height, channels = camera.width, camera.height, gaussians.num_channels
    like = dict(dtype=gaussians.dtype, device=gaussians.device)
    with stage(timer, "projection"):
        projection = project_gaussians(gaussians, camera, covariances)
    with stage(timer, "sorting"):
        visible = torch.nonzero(projection.visible)[:, 0]
        front_to_back = visible[torch.sort(projection.depths.detach()[visible], stable=True).indices]
    splats = _Splats(
        means2d=projection.means2d[front_to_back],
        conics=projection.conics[front_to_back],
        opacities=gaussians.opacities[front_to_back],
        features=gaussians.features[front_to_back],
        depths=projection.depths[front_to_back],
        extents=projection.extents[front_to_back],
        width=width,
    )
    bands = [
        _composite_rows(splats, top, min(top + ROW_BAND, height), channels, timer)
        for top in range(0, height, ROW_BAND)
    ]
    with stage(timer, "blending"):
        features, alpha, depth_sum = (torch.cat(parts).reshape(height, width, -1) for parts in zip(*bands))
        alpha, depth_sum = alpha[..., 0], depth_sum[..., 0]
        features = features + (1 - alpha)[..., None] * background_tensor(background, channels, **like)
        depth = depth_sum / alpha.clamp(min=1e-10)
    return RenderOutput(features, alpha, depth)


class _Splats:
    """Projected Gaussians in front-to-back order with their integer pixel boxes."""

    def __init__(self, means2d, conics, opacities, features, depths, extents, width: int) -> None:
        self.means2d, self.conics, self.opacities = means2d, conics, opacities
        self.features, self.depths, self.width = features, depths, width
        with torch.no_grad():
            # Pixel i has its centre at i + 0.5; a box holds the centres within the extents.
            low = torch.ceil(means2d - extents - 0.5).clamp(min=0)
            high = torch.floor(means2d + extents - 0.5)
            self.low, self.high = low.long(), high.long()


def _composite_rows(
    splats: _Splats, top: int, bottom: int, channels: int, timer: StageTimer | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite image rows ``[top, bottom)``: features [P, C], alpha [P, 1], depth sum [P, 1]."""
    width = splats.width
    num_pixels = (bottom - top) * width
    like = dict(dtype=splats.means2d.dtype, device=splats.means2d.device)
    with stage(timer, "sorting"):
        splat_ids, pixel_x, pixel_y = _footprint_pairs(splats, top, bottom)
    with stage(timer, "blending"):
        offsets = torch.stack([pixel_x, pixel_y], dim=-1).to(like["dtype"]) + 0.5 - splats.means2d[splat_ids]
        a, b, c = splats.conics[splat_ids].unbind(-1)
        power = 0.5 * (a * offsets[:, 0] ** 2 + c * offsets[:, 1] ** 2) + b * offsets[:, 0] * offsets[:, 1]
        alpha = torch.clamp(splats.opacities[splat_ids] * torch.exp(-power), max=ALPHA_MAX)
        inside = (power <= MAX_POWER) & (alpha >= ALPHA_MIN)
        splat_ids, alpha = splat_ids[inside], alpha[inside]
        pixel = (pixel_y[inside] - top) * width + pixel_x[inside]
    with stage(timer, "sorting"):
        # Pairs are enumerated in front-to-back splat order, so a stable sort by pixel keeps
        # every pixel's list front to back (ties in depth broken by the Gaussians' order).
        pixel, order = torch.sort(pixel, stable=True)
        splat_ids, alpha = splat_ids[order], alpha[order]
    with stage(timer, "blending"):
        weights = _front_to_back_weights(alpha, pixel)
        features = torch.zeros(num_pixels, channels, **like).index_add(
            0, pixel, weights[:, None] * splats.features[splat_ids]
        )
        alpha_sum = torch.zeros(num_pixels, **like).index_add(0, pixel, weights)
        depth_sum = torch.zeros(num_pixels, **like).index_add(0, pixel, weights * splats.depths[splat_ids])
    return features, alpha_sum[:, None], depth_sum[:, None]


@torch.no_grad()
def _footprint_pairs(
    splats: _Splats, top: int, bottom: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (splat, pixel) pair of the footprint boxes within rows ``[top, bottom)``.

    Returns splat ids [P] (ascending, i.e. front to back), pixel x [P] and pixel y [P].
    """
    x_low, y_low = splats.low[:, 0], splats.low[:, 1].clamp(min=top)
    x_high = splats.high[:, 0].clamp(max=splats.width - 1)
    y_high = splats.high[:, 1].clamp(max=bottom - 1)
    box_width = (x_high - x_low + 1).clamp(min=0)
    counts = box_width * (y_high - y_low + 1).clamp(min=0)
    splat_ids = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    first_pair = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(splat_ids), device=counts.device) - first_pair[splat_ids]
    row_width = box_width[splat_ids]
    return splat_ids, x_low[splat_ids] + local % row_width, y_low[splat_ids] + local // row_width


def _front_to_back_weights(alpha: torch.Tensor, pixel: torch.Tensor) -> torch.Tensor:
    """Compositing weights ``alpha_i * T_i`` of pairs grouped by pixel (front to back within a pixel).

    ``T_i`` is the product of ``1 - alpha`` over the pixel's earlier pairs. A pair whose own
    factor would bring the transmittance below ``TRANSMITTANCE_MIN`` gets weight 0, as do all
    later pairs of its pixel (the running product only falls): gsplat's exclusive early stop.

    Args:
        alpha: [P] per-pair alpha. pixel: [P] pixel index, sorted ascending.
    Returns:
        [P] weights, differentiable in ``alpha``.
    """
    if len(alpha) == 0:
        return alpha
    log_factor = torch.log1p(-alpha.double())
    log_after = torch.cumsum(log_factor, 0)
    starts = torch.ones_like(pixel, dtype=torch.bool)
    starts[1:] = pixel[1:] != pixel[:-1]
    segment = torch.cumsum(starts.long(), 0) - 1
    log_before_segment = (log_after - log_factor)[starts]
    log_after = log_after - log_before_segment[segment]
    keep = log_after >= _LOG_TRANSMITTANCE_MIN
    transmittance = torch.exp(log_after - log_factor).to(alpha.dtype)
    return torch.where(keep, alpha * transmittance, torch.zeros_like(alpha))
