"""Linear blend skinning for FLAME as small pure torch functions.

Shapes use ``B`` batch, ``V`` vertices (any subset of the mesh), ``K`` blendshape
coefficients, ``J`` joints and ``P = 9 * (J - 1)`` pose-corrective features. Every function
works in any floating dtype and is differentiable (also under ``torch.func``).

Joints are regressed from the rest mesh, which is linear in the blendshape coefficients, so
``regress_joints`` turns the template and blendshapes into joint-space ones once:
``joints(c) = joint_template + blend_shapes(c, joint_dirs)``. Then ``lbs`` needs no other
vertex than those it poses, and can pose a subset of the mesh.
"""

from __future__ import annotations

import torch
from torch import Tensor


def blend_shapes(coefficients: Tensor, directions: Tensor) -> Tensor:
    """Displacements of a blendshape basis.

    Args:
        coefficients: [B, K].
        directions: [N, 3, K] (N vertices or joints).

    Returns:
        [B, N, 3] with ``out[b, n] = sum_k coefficients[b, k] * directions[n, :, k]``.
    """
    return torch.einsum("bk,nck->bnc", coefficients, directions)


def regress_joints(J_regressor: Tensor, points: Tensor) -> Tensor:
    """Joints regressed from per-vertex quantities.

    Args:
        J_regressor: [J, V].
        points: [V, ...] (e.g. the template [V, 3] or blendshapes [V, 3, K]).

    Returns:
        [J, ...] = ``J_regressor @ points`` over the vertex axis.
    """
    return torch.tensordot(J_regressor, points, dims=([1], [0]))


_SMALL_ANGLE_SQ = 1e-2  # below this squared angle, Taylor series (accurate to about 3e-13)


def batch_rodrigues(rotvecs: Tensor) -> Tensor:
    """Rotation matrices of axis-angle vectors, exact in value and derivative at 0.

    Args:
        rotvecs: [N, 3] axis times angle in radians.

    Returns:
        [N, 3, 3] ``R = I + a K + b K^2``, ``K`` the cross-product matrix of the vector,
        ``a = sin(t) / t`` and ``b = (1 - cos(t)) / t^2``.
    """
    a, b, _, _ = _rodrigues_coefficients((rotvecs * rotvecs).sum(dim=1))
    K = _skew(rotvecs)
    identity = torch.eye(3, dtype=rotvecs.dtype, device=rotvecs.device)
    return identity + a[:, None, None] * K + b[:, None, None] * (K @ K)


def batch_rodrigues_derivative(rotvecs: Tensor) -> Tensor:
    """Derivatives of :func:`batch_rodrigues`.

    Args:
        rotvecs: [N, 3].

    Returns:
        [N, 3, 3, 3] where ``[n, i]`` is ``dR_n / d rotvecs[n, i]``:
        ``a E_i + b (E_i K + K E_i) + 2 r_i (a' K + b' K^2)``, ``E_i`` the cross-product
        matrix of axis i and ``a'``, ``b'`` the derivatives of ``a``, ``b`` in ``t^2``.
    """
    a, b, da, db = (c[:, None, None, None] for c in _rodrigues_coefficients((rotvecs * rotvecs).sum(dim=1)))
    K = _skew(rotvecs)[:, None]  # [N, 1, 3, 3]
    E = _skew(torch.eye(3, dtype=rotvecs.dtype, device=rotvecs.device))[None]  # [1, 3, 3, 3]
    return a * E + b * (E @ K + K @ E) + 2.0 * rotvecs[:, :, None, None] * (da * K + db * (K @ K))


def _rodrigues_coefficients(angle_sq: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """[N] squared angles -> ``a``, ``b`` of :func:`batch_rodrigues` and their derivatives in ``t^2``."""
    small = angle_sq < _SMALL_ANGLE_SQ
    x = angle_sq
    safe = torch.where(small, torch.ones_like(x), x)  # keeps the unused branch finite
    t = torch.sqrt(safe)
    sin, cos = torch.sin(t), torch.cos(t)
    x2, x3 = x * x, x * x * x
    a = torch.where(small, 1.0 - x / 6.0 + x2 / 120.0 - x3 / 5040.0, sin / t)
    b = torch.where(small, 0.5 - x / 24.0 + x2 / 720.0 - x3 / 40320.0, (1.0 - cos) / safe)
    da = torch.where(
        small, -1.0 / 6.0 + x / 60.0 - x2 / 1680.0 + x3 / 90720.0, (t * cos - sin) / (2.0 * safe * t)
    )
    db = torch.where(
        small,
        -1.0 / 24.0 + x / 360.0 - x2 / 13440.0 + x3 / 907200.0,
        (t * sin - 2.0 * (1.0 - cos)) / (2.0 * safe * safe),
    )
    return a, b, da, db


def _skew(vectors: Tensor) -> Tensor:
    """[N, 3] -> [N, 3, 3] cross-product matrices (``_skew(v) @ w = v x w``)."""
    x, y, z = vectors.unbind(dim=1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)


def pose_features(rot_mats: Tensor) -> Tensor:
    """Pose-corrective blendshape coefficients: ``R - I`` of every non-root joint.

    Args:
        rot_mats: [B, J, 3, 3] local joint rotations.

    Returns:
        [B, P] with P = 9 * (J - 1), joint-major then row-major (FLAME's order).
    """
    identity = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - identity).flatten(start_dim=1)


def batch_rigid_transform(rot_mats: Tensor, joints: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """Forward kinematics along the kinematic tree.

    Args:
        rot_mats: [B, J, 3, 3] local rotations.
        joints: [B, J, 3] rest joint positions.
        parents: [J] parent index of each joint (``parents[0] = -1``, ``parents[j] < j``).

    Returns:
        posed_joints: [B, J, 3] joint positions after posing.
        transforms: [B, J, 4, 4] world transforms relative to the rest pose: they map a
            rest-pose point rigidly attached to joint j to its posed position.
    """
    parent_list = parents.tolist()
    offsets = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parent_list[1:]]], dim=1)
    rotations = [rot_mats[:, 0]]
    translations = [offsets[:, 0]]
    for j in range(1, len(parent_list)):
        parent = parent_list[j]
        rotations.append(rotations[parent] @ rot_mats[:, j])
        translations.append(translations[parent] + (rotations[parent] @ offsets[:, j, :, None])[..., 0])
    rotation = torch.stack(rotations, dim=1)  # [B, J, 3, 3]
    posed_joints = torch.stack(translations, dim=1)  # [B, J, 3]
    rest_offset = posed_joints - (rotation @ joints[..., None])[..., 0]
    top = torch.cat([rotation, rest_offset[..., None]], dim=-1)  # [B, J, 3, 4]
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=top.dtype, device=top.device)
    return posed_joints, torch.cat([top, bottom.expand(*top.shape[:-2], 1, 4)], dim=-2)


def skin(points: Tensor, lbs_weights: Tensor, transforms: Tensor) -> Tensor:
    """Blend the joint transforms per vertex and apply them.

    Args:
        points: [B, V, 3] rest-pose points (with blendshapes and pose correctives).
        lbs_weights: [V, J].
        transforms: [B, J, 4, 4] from :func:`batch_rigid_transform`.

    Returns:
        [B, V, 3] posed points.
    """
    blended = torch.einsum("vj,bjrc->bvrc", lbs_weights, transforms[:, :, :3, :])  # [B, V, 3, 4]
    return (blended[..., :3] @ points[..., None])[..., 0] + blended[..., 3]


def pose_rest_points(
    rest: Tensor, rest_joints: Tensor, rotvecs: Tensor, posedirs: Tensor, parents: Tensor, lbs_weights: Tensor
) -> tuple[Tensor, Tensor]:
    """Pose rest-shape points: pose correctives, forward kinematics, skinning.

    Args:
        rest: [B, V, 3] rest points (template plus blendshapes).
        rest_joints: [B, J, 3] their rest joints.
        rotvecs: [B, J, 3] axis-angle local joint rotations (joint 0 is the global one).
        posedirs: [V, 3, P] pose-corrective blendshapes.
        parents: [J] kinematic tree.
        lbs_weights: [V, J].

    Returns:
        vertices: [B, V, 3] posed points.
        joints: [B, J, 3] posed joints.
    """
    batch = rotvecs.shape[0]
    rot_mats = batch_rodrigues(rotvecs.reshape(-1, 3)).view(batch, -1, 3, 3)
    corrected = rest + torch.einsum("bp,vcp->bvc", pose_features(rot_mats), posedirs)
    joints, transforms = batch_rigid_transform(rot_mats, rest_joints, parents)
    return skin(corrected, lbs_weights, transforms), joints


def lbs(
    coefficients: Tensor,
    rotvecs: Tensor,
    v_template: Tensor,
    blenddirs: Tensor,
    posedirs: Tensor,
    joint_template: Tensor,
    joint_dirs: Tensor,
    parents: Tensor,
    lbs_weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """Pose a (subset of a) FLAME mesh.

    Args:
        coefficients: [B, K] blendshape coefficients (shape, expression, eyelids, ...).
        rotvecs: [B, J, 3] axis-angle local joint rotations (joint 0 is the global one).
        v_template: [V, 3] rest vertices.
        blenddirs: [V, 3, K] blendshapes matching ``coefficients``.
        posedirs: [V, 3, P] pose-corrective blendshapes.
        joint_template: [J, 3] joints of the template (``regress_joints(J_regressor, v_template)``).
        joint_dirs: [J, 3, K] joint blendshapes (``regress_joints(J_regressor, blenddirs)``).
        parents: [J] kinematic tree.
        lbs_weights: [V, J].

    Returns:
        vertices: [B, V, 3] posed vertices.
        joints: [B, J, 3] posed joints.
    """
    rest = v_template + blend_shapes(coefficients, blenddirs)  # [B, V, 3]
    rest_joints = joint_template + blend_shapes(coefficients, joint_dirs)  # [B, J, 3]
    return pose_rest_points(rest, rest_joints, rotvecs, posedirs, parents, lbs_weights)
