"""FLAME in the OMG-Avatar release's convention (its network was trained with it).

* 300 shape and 100 expression coefficients;
* ``pose`` [B, 6] = global rotation (0:3) then jaw (3:6), axis-angle; the neck stays zero;
  ``eyes`` [B, 6] = left eye then right eye;
* the learned per-vertex offsets (FLAME metres) are added to the template *before* the
  blendshapes, so the joints are regressed from the displaced mesh and move with it;
* no translation; the output is multiplied by 5.0 (world units); the head pose otherwise
  lives in the camera (``core.geometry.release_camera``).

The forward runs in float32 in the release's order of operations (smplx-style linear blend
skinning, including its Rodrigues formula with ``angle = |r + 1e-8|``), so that it reproduces the
release's vertices to the last bit: its occlusion test normalises depths spread over ~1e-4, and
a rounding difference in a vertex flips a few vertices' visibility. :class:`core.flame.FlameLayer`
(float64-exact Rodrigues, joints regressed once) stays the layer for fitting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ModelFileError
from core.flame.files import FlameModelData, load_flame_model

RELEASE_SCALE = 5.0  # FLAME metres -> world units
RELEASE_SHAPE = 300
RELEASE_EXPRESSION = 100
FLAME_JOINTS = 5  # global, neck, jaw, left eye, right eye


class ReleaseFlame(nn.Module):
    """FLAME posed the release's way, in world units.

    Buffers (float32, not saved in state dicts: FLAME's data come from the user's file):
    ``v_template`` [V, 3], ``shapedirs`` [V, 3, n_shape + n_expression], ``posedirs`` [V, 3, P],
    ``J_regressor`` [J, V], ``parents`` [J] (int64), ``lbs_weights`` [V, J], ``faces`` [F, 3]
    (int64, FLAME's own order).
    """

    def __init__(
        self,
        model: FlameModelData,
        n_shape: int = RELEASE_SHAPE,
        n_expression: int = RELEASE_EXPRESSION,
        scale: float = RELEASE_SCALE,
    ) -> None:
        super().__init__()
        if model.parents.shape[0] != FLAME_JOINTS:
            raise ModelFileError(f"{model.source}: has {model.parents.shape[0]} joints, FLAME has {FLAME_JOINTS}")
        for what, wanted, available in (
            ("shape", n_shape, model.shapedirs.shape[2]),
            ("expression", n_expression, model.exprdirs.shape[2]),
        ):
            if not 0 <= wanted <= available:
                raise ModelFileError(f"{model.source}: has {available} {what} components, {wanted} were asked for")
        self.n_shape, self.n_expression, self.scale = n_shape, n_expression, scale
        shapedirs = np.concatenate([model.shapedirs[..., :n_shape], model.exprdirs[..., :n_expression]], axis=2)
        buffers = {
            "v_template": model.v_template,
            "shapedirs": np.ascontiguousarray(shapedirs),
            "posedirs": model.posedirs,
            "J_regressor": model.J_regressor,
            "lbs_weights": model.lbs_weights,
        }
        for name, value in buffers.items():
            # the file's memory layout (the release multiplies the file's tensors as they are
            # laid out, and BLAS sums in an order that depends on it), in torch's allocation
            array = value.astype(np.float32, order="K")
            self.register_buffer(name, torch.from_numpy(array).clone(), persistent=False)
        self.register_buffer("parents", torch.as_tensor(model.parents, dtype=torch.int64), persistent=False)
        self.register_buffer("faces", torch.as_tensor(model.faces, dtype=torch.int64), persistent=False)

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def forward(
        self, shape: Tensor, expression: Tensor, pose: Tensor, eyes: Tensor, offsets: Tensor | None = None
    ) -> Tensor:
        """Posed vertices in world units.

        Args:
            shape: [B, n_shape].
            expression: [B, n_expression].
            pose: [B, 6] global rotation, then jaw (axis-angle).
            eyes: [B, 6] left eye, then right eye (axis-angle).
            offsets: [B, V, 3] learned template offsets in FLAME metres, or None.

        Returns:
            [B, V, 3] float32 = FLAME(...) * ``scale``.
        """
        batch = shape.shape[0]
        coefficients = torch.cat([shape, expression], dim=1).to(torch.float32)
        pose, eyes = pose.to(torch.float32), eyes.to(torch.float32)
        neck = pose.new_zeros(batch, 3)
        rotvecs = torch.cat([pose[:, :3], neck, pose[:, 3:], eyes], dim=1)  # [B, 15]
        template = self.v_template[None].expand(batch, -1, -1)
        if offsets is not None:
            template = template + offsets.to(torch.float32)
        rest = template + torch.einsum("bl,mkl->bmk", coefficients, self.shapedirs)
        joints = torch.einsum("bik,ji->bjk", rest, self.J_regressor)

        rotations = release_rodrigues(rotvecs.reshape(-1, 3)).reshape(batch, -1, 3, 3)
        identity = torch.eye(3, dtype=torch.float32, device=rest.device)
        pose_features = (rotations[:, 1:] - identity).reshape(batch, -1)
        posedirs = self.posedirs.reshape(-1, self.posedirs.shape[2]).T  # [P, 3V], a view when the layout allows
        corrected = torch.matmul(pose_features, posedirs).reshape(batch, -1, 3) + rest

        transforms = _relative_transforms(rotations, joints, self.parents)  # [B, J, 4, 4]
        blended = torch.matmul(self.lbs_weights[None].expand(batch, -1, -1), transforms.reshape(batch, -1, 16))
        blended = blended.reshape(batch, -1, 4, 4)
        homogeneous = torch.cat([corrected, corrected.new_ones(batch, corrected.shape[1], 1)], dim=2)
        vertices = torch.matmul(blended, homogeneous[..., None])[:, :, :3, 0]
        return vertices * self.scale


def load_release_flame(path: str | Path) -> ReleaseFlame:
    """:class:`ReleaseFlame` of a FLAME file (the release's ``FLAME_with_eye.pt``, or any format
    :func:`core.flame.files.load_flame_model` reads)."""
    return ReleaseFlame(load_flame_model(path))


def release_rodrigues(rotvecs: Tensor) -> Tensor:
    """[N, 3] axis-angle -> [N, 3, 3] rotations, as the release (and smplx) compute them:
    ``angle = |r + 1e-8|`` (1e-8 added to every component), ``R = I + sin K + (1 - cos) K^2``
    with K the cross-product matrix of ``r / angle``; exactly I for r = 0."""
    angle = torch.norm(rotvecs + 1e-8, dim=1, keepdim=True)
    axis = rotvecs / angle
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x, y, z = torch.split(axis, 1, dim=1)
    zero = torch.zeros_like(x)
    cross = torch.cat([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).reshape(-1, 3, 3)
    identity = torch.eye(3, dtype=rotvecs.dtype, device=rotvecs.device)[None]
    return identity + sin * cross + (1 - cos) * torch.bmm(cross, cross)


def _relative_transforms(rotations: Tensor, joints: Tensor, parents: Tensor) -> Tensor:
    """Forward kinematics: [B, J, 3, 3] local rotations and [B, J, 3] rest joints -> [B, J, 4, 4]
    transforms that move rest-pose points rigidly attached to each joint to their posed place."""
    batch, count = joints.shape[:2]
    joints = joints[..., None]  # [B, J, 3, 1]
    parent_list = parents.tolist()
    local = joints.clone()
    local[:, 1:] -= joints[:, parent_list[1:]]
    matrices = torch.cat(
        [F.pad(rotations.reshape(-1, 3, 3), [0, 0, 0, 1]), F.pad(local.reshape(-1, 3, 1), [0, 0, 0, 1], value=1)],
        dim=2,
    ).reshape(batch, count, 4, 4)
    chain = [matrices[:, 0]]
    for j in range(1, count):
        chain.append(torch.matmul(chain[parent_list[j]], matrices[:, j]))
    transforms = torch.stack(chain, dim=1)
    rest_joints = F.pad(joints, [0, 0, 0, 1])  # [B, J, 4, 1], w = 0
    return transforms - F.pad(torch.matmul(transforms, rest_joints), [3, 0, 0, 0, 0, 0, 0, 0])
