"""FLAME as a batched torch layer.

World units are FLAME's metres: callers multiply by ``FlameConfig.scale`` (5 in the paper's
GAGAvatar convention) when they place the head in the scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from core.config import FlameConfig
from core.errors import ModelFileError
from core.flame.files import (
    FLAME_SITE,
    RELEASE_SUFFIXES,
    FlameModelData,
    LandmarkEmbedding,
    load_flame_model,
    load_landmark_embedding,
    load_release_landmark_embedding,
)
from core.flame.lbs import lbs, regress_joints
from core.paths import resolve_model_file

FLAME_JOINTS = 5  # global, neck, jaw, left eye, right eye


class FlameOutput(NamedTuple):
    vertices: Tensor  # [B, V, 3] metres
    joints: Tensor  # [B, J, 3] metres: global, neck, jaw, left eye, right eye


class FlameLayer(nn.Module):
    """FLAME with ``n_shape`` shape and ``n_expression`` expression components.

    Blendshape coefficients are ordered shape, expression, then the two eyelids when the
    model has eyelid blendshapes. Buffers (float32 unless ``dtype`` says otherwise):

    * ``v_template`` [V, 3], ``blenddirs`` [V, 3, K], ``posedirs`` [V, 3, P],
      ``lbs_weights`` [V, J], ``faces`` [F, 3] (int64), ``parents`` [J] (int64);
    * ``joint_template`` [J, 3] and ``joint_dirs`` [J, 3, K]: the joint regressor applied to
      the template and the blendshapes, so joints follow the coefficients linearly;
    * with an embedding: ``landmark_vertices`` [L, 3] (int64), ``landmark_weights`` [L, 3]
      and ``landmark_mediapipe`` [L] (int64), the matching MediaPipe points.
    """

    def __init__(
        self,
        model: FlameModelData,
        n_shape: int = 300,
        n_expression: int = 100,
        embedding: LandmarkEmbedding | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if model.parents.shape[0] != FLAME_JOINTS:
            raise ModelFileError(
                f"{model.source}: has {model.parents.shape[0]} joints, FLAME has {FLAME_JOINTS}"
            )
        for what, wanted, available in (
            ("shape", n_shape, model.shapedirs.shape[2]),
            ("expression", n_expression, model.exprdirs.shape[2]),
        ):
            if not 0 <= wanted <= available:
                raise ModelFileError(
                    f"{model.source}: has {available} {what} components, {wanted} were asked for"
                )
        self.n_shape = n_shape
        self.n_expression = n_expression
        self.has_eyelids = model.eyelids is not None

        dirs = [model.shapedirs[..., :n_shape], model.exprdirs[..., :n_expression]]
        if model.eyelids is not None:
            dirs.append(model.eyelids.transpose(1, 2, 0))  # [V, 3, 2]
        blenddirs = torch.cat([_float64(d) for d in dirs], dim=2)
        v_template = _float64(model.v_template)
        J_regressor = _float64(model.J_regressor)

        buffers = {
            "v_template": v_template,
            "blenddirs": blenddirs,
            "posedirs": _float64(model.posedirs),
            "lbs_weights": _float64(model.lbs_weights),
            "joint_template": regress_joints(J_regressor, v_template),
            "joint_dirs": regress_joints(J_regressor, blenddirs),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.to(dtype))
        faces = torch.as_tensor(model.faces, dtype=torch.int64)
        self.register_buffer("faces", faces)
        self.register_buffer("parents", torch.as_tensor(model.parents, dtype=torch.int64))
        if embedding is not None:
            if embedding.face_indices.max() >= faces.shape[0]:
                raise ModelFileError(f"landmark embedding refers to face {embedding.face_indices.max()}, "
                                     f"but {model.source} has {faces.shape[0]} faces")
            self.register_buffer("landmark_vertices", faces[torch.as_tensor(embedding.face_indices)])
            self.register_buffer("landmark_weights", torch.as_tensor(embedding.barycentric, dtype=dtype))
            mediapipe = torch.as_tensor(embedding.mediapipe_indices, dtype=torch.int64)
            self.register_buffer("landmark_mediapipe", mediapipe)
        self.has_landmarks = embedding is not None

    def forward(
        self,
        shape: Tensor | None = None,
        expression: Tensor | None = None,
        rotation: Tensor | None = None,
        neck: Tensor | None = None,
        jaw: Tensor | None = None,
        eyes: Tensor | None = None,
        eyelids: Tensor | None = None,
        translation: Tensor | None = None,
    ) -> FlameOutput:
        """Pose the mesh; every argument is optional (zeros) and batched.

        Args:
            shape: [B, n_shape].
            expression: [B, n_expression].
            rotation: [B, 3] global axis-angle rotation (about the root joint, as FLAME does).
            neck, jaw: [B, 3] axis-angle.
            eyes: [B, 6] axis-angle of the left eye (joint 3) then the right eye (joint 4).
            eyelids: [B, 2] left and right eyelid closure; only for models with eyelids.
            translation: [B, 3] metres, added last.

        Returns:
            vertices [B, V, 3] and joints [B, J, 3] in FLAME metres.
        """
        if eyelids is not None and not self.has_eyelids:
            raise ValueError("this FLAME model has no eyelid blendshapes (l_eyelid.npy, r_eyelid.npy)")
        arguments = (shape, expression, rotation, neck, jaw, eyes, eyelids, translation)
        given = [t for t in arguments if t is not None]
        batch = given[0].shape[0] if given else 1

        def given_or_zeros(value: Tensor | None, size: int) -> Tensor:
            if value is None:
                return self.v_template.new_zeros(batch, size)
            return value.to(self.v_template.dtype)

        blends = [(shape, self.n_shape), (expression, self.n_expression)]
        if self.has_eyelids:
            blends.append((eyelids, 2))
        rotations = [(rotation, 3), (neck, 3), (jaw, 3), (eyes, 6)]
        coefficients = torch.cat([given_or_zeros(v, n) for v, n in blends], dim=1)
        rotvecs = torch.cat([given_or_zeros(v, n) for v, n in rotations], dim=1).view(batch, FLAME_JOINTS, 3)
        vertices, joints = lbs(
            coefficients,
            rotvecs,
            self.v_template,
            self.blenddirs,
            self.posedirs,
            self.joint_template,
            self.joint_dirs,
            self.parents,
            self.lbs_weights,
        )
        if translation is not None:
            vertices = vertices + translation[:, None]
            joints = joints + translation[:, None]
        return FlameOutput(vertices, joints)

    def landmarks(self, vertices: Tensor) -> Tensor:
        """[B, V, 3] vertices -> [B, L, 3] embedded landmark points (barycentric on faces)."""
        if not self.has_landmarks:
            raise ValueError("this FlameLayer was built without a landmark embedding")
        corners = vertices[:, self.landmark_vertices]  # [B, L, 3, 3]
        return (corners * self.landmark_weights[None, :, :, None]).sum(dim=2)


def load_flame_layer(flame_file: Path, config: FlameConfig, embedding_file: Path | None = None) -> FlameLayer:
    """The FLAME layer of ``flame_file`` with ``config``'s component counts and the landmarks
    it is fitted to: the MediaPipe landmark embedding ``embedding_file`` when given, else the
    embedding :func:`find_landmark_embedding` chooses."""
    return fitting_flame_layer(load_flame_model(flame_file), flame_file, config, embedding_file)


def fitting_flame_layer(
    model: FlameModelData, flame_file: Path, config: FlameConfig, embedding_file: Path | None = None
) -> FlameLayer:
    """:func:`load_flame_layer` for ``model``, already read from ``flame_file``."""
    n_faces = model.faces.shape[0]
    if embedding_file:
        embedding = load_landmark_embedding(embedding_file, n_faces=n_faces)
    else:
        embedding = find_landmark_embedding(flame_file, config, n_faces)
    return FlameLayer(model, config.n_shape, config.n_expression, embedding)


def find_landmark_embedding(flame_file: Path, config: FlameConfig, n_faces: int) -> LandmarkEmbedding:
    """The landmarks to fit ``flame_file`` (of ``n_faces`` faces) to: FLAME's MediaPipe embedding
    (``config.landmark_embedding_file`` in the models folder) when it is there, else the iBUG-68
    points of the release's ``FLAME_with_eye.pt`` when ``flame_file`` is one (51 points:
    :func:`~core.flame.files.load_release_landmark_embedding`). With neither, a one-line
    ModelFileError names the missing file and where it goes."""
    mediapipe_file = resolve_model_file(config.landmark_embedding_file)
    if mediapipe_file.is_file():
        return load_landmark_embedding(mediapipe_file, n_faces=n_faces)
    if Path(flame_file).suffix in RELEASE_SUFFIXES:
        return load_release_landmark_embedding(flame_file, n_faces)
    raise ModelFileError(
        f"{mediapipe_file.name} not found at {mediapipe_file}, and {Path(flame_file).name} carries no "
        f"landmarks: download it from {FLAME_SITE} and put it there, or use the OMG-Avatar release's "
        f"FLAME_with_eye.pt, which has its own"
    )


def _float64(array) -> Tensor:
    return torch.as_tensor(array, dtype=torch.float64)
