"""EWA projection of 3D Gaussians to screen-space 2D Gaussians, in differentiable torch.

The maths of gsplat's classic pinhole projection (Zwicker et al.'s EWA splatting):
``cov2d = J W cov3d W^T J^T + LOW_PASS * I`` with ``W`` the camera rotation and ``J`` the
Jacobian of the perspective map at the Gaussian's centre (its ``x/z, y/z`` clamped to
just beyond the field of view). The ``cpu`` backend compiles the same maths; tests hold
both to gsplat's own pure-torch projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.geometry.camera import Camera
from core.render.constants import EXTENT_SIGMAS, JACOBIAN_FOV_MARGIN, LOW_PASS, NEAR_PLANE
from core.render.gaussians import Gaussians


@dataclass(frozen=True)
class Projection:
    """N Gaussians seen by one camera.

    Attributes:
        means2d: [N, 2] projected centres in pixels (x right, y down).
        covars2d: [N, 2, 2] screen-space covariances in px^2, low-pass included.
        conics: [N, 3] ``(a, b, c)`` of the inverse covariance: a pixel at offset ``d`` from
            the centre has ``power = 0.5 * (a dx^2 + c dy^2) + b dx dy``.
        depths: [N] camera-space z.
        extents: [N, 2] half width and half height, in pixels, of the box that bounds the
            ``EXTENT_SIGMAS`` footprint.
        visible: [N] bool: in front of the near plane and with a footprint box that meets
            the image. Other rows hold finite placeholders.
    """

    means2d: torch.Tensor
    covars2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    extents: torch.Tensor
    visible: torch.Tensor


def quaternion_matrix(quats: torch.Tensor) -> torch.Tensor:
    """[..., 4] quaternions (w, x, y, z) -> [..., 3, 3] by the rotation formula, without
    normalising: a rotation only for unit quaternions (3DGS rasterisers that skip the
    normalisation draw with this matrix; :func:`covariance_3d` normalises first)."""
    w, x, y, z = quats.unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[N, 4] quaternions and [N, 3] scales -> [N, 3, 3] covariances ``R S S R^T``."""
    return drawn_covariance(torch.nn.functional.normalize(quats, dim=-1), scales)


def drawn_covariance(raw_quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[N, 4] quaternions (w, x, y, z), not necessarily unit, and [N, 3] scales -> [N, 3, 3]
    ``M M^T`` with ``M = quaternion_matrix(q) diag(s)``: the covariance a 3DGS rasteriser that
    skips the normalisation draws (the released OMG-Avatar's); ``R S S R^T`` for unit quaternions."""
    matrix = quaternion_matrix(raw_quats) * scales[..., None, :]
    return matrix @ matrix.transpose(-1, -2)


def project_gaussians(gaussians: Gaussians, camera: Camera, covariances: torch.Tensor | None = None) -> Projection:
    """Project ``gaussians`` through ``camera`` (differentiable in all Gaussian attributes).
    ``covariances``: [N, 3, 3] world covariances drawn instead of the quaternions' and scales'."""
    like = dict(dtype=gaussians.dtype, device=gaussians.device)
    rotation = torch.as_tensor(camera.R, **like)
    K = torch.as_tensor(camera.K, **like)
    means_cam = gaussians.means @ rotation.T + torch.as_tensor(camera.t, **like)
    if covariances is None:
        covariances = covariance_3d(gaussians.quats, gaussians.scales)
    covars_cam = rotation @ covariances.to(**like) @ rotation.T

    depths = means_cam[:, 2]
    in_front = depths > NEAR_PLANE
    z = torch.where(in_front, depths, torch.ones_like(depths))  # placeholders stay finite
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    margin_x = JACOBIAN_FOV_MARGIN * 0.5 * camera.width / fx
    margin_y = JACOBIAN_FOV_MARGIN * 0.5 * camera.height / fy
    limit_x = (-(cx / fx + margin_x), (camera.width - cx) / fx + margin_x)
    limit_y = (-(cy / fy + margin_y), (camera.height - cy) / fy + margin_y)
    tan_x = torch.clamp(means_cam[:, 0] / z, *limit_x)
    tan_y = torch.clamp(means_cam[:, 1] / z, *limit_y)
    zeros = torch.zeros_like(z)
    jacobian = torch.stack(
        [fx / z, zeros, -fx * tan_x / z, zeros, fy / z, -fy * tan_y / z], dim=-1
    ).reshape(-1, 2, 3)
    covars2d = jacobian @ covars_cam @ jacobian.transpose(-1, -2)
    covars2d = covars2d + LOW_PASS * torch.eye(2, **like)

    var_x, cov_xy, var_y = covars2d[:, 0, 0], covars2d[:, 0, 1], covars2d[:, 1, 1]
    det = var_x * var_y - cov_xy * cov_xy
    conics = torch.stack([var_y / det, -cov_xy / det, var_x / det], dim=-1)
    means2d = (means_cam @ K[:2].T) / z[:, None]

    extents = EXTENT_SIGMAS * torch.sqrt(torch.stack([var_x, var_y], dim=-1))
    size = torch.tensor([camera.width, camera.height], **like)
    meets_image = ((means2d + extents > 0) & (means2d - extents < size)).all(dim=-1)
    visible = in_front & meets_image & torch.isfinite(means2d).all(dim=-1)
    return Projection(means2d, covars2d, conics, depths, extents, visible.detach())
