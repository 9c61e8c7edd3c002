"""The FLAME rig of a network avatar: its control mesh is FLAME re-posed per frame.

Per frame the head's control vertices are FLAME in the OMG-Avatar release's convention
(:class:`~core.flame.release.ReleaseFlame`: the source's shape, the learned template offsets,
the frame's expression, jaw and eyes, global rotation zero, world units), as the released
network animates its avatars; the avatar then applies the frame's head rotation and
translation (:meth:`HeadRig.posed`).

What the avatar keeps, and why: the shape coefficients, the offsets and the source's
articulation (:class:`FlamePose`), plus vertices derived from them (the control mesh at
the source's expression, ``HeadRig.vertices``). It never holds FLAME's own data (template,
blendshapes, pose correctives, skinning weights): FLAME's licence forbids redistributing
the model, and an avatar file is something users share. So an avatar file loads, renders
and follows head motion without the FLAME file; posing a new expression needs the model,
attached at run time with :meth:`FlameRig.with_model` (``Avatar.with_flame``) from the
user's own FLAME file, which also gives the tracker its FLAME (:class:`AttachedFlame`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import Config
from core.errors import ModelFileError
from core.flame import FlameLayer, FlameParams, load_flame_layer
from core.flame.files import RELEASE_FLAME_FILE, load_flame_model
from core.flame.layer import fitting_flame_layer
from core.flame.release import RELEASE_EXPRESSION, RELEASE_SCALE, RELEASE_SHAPE, ReleaseFlame
from core.geometry.release_camera import RELEASE_FOCAL
from core.paths import resolve_model_file


@dataclass(frozen=True)
class FlamePose:
    """One frame's FLAME articulation (float numpy arrays).

    Attributes:
        expression: [E] coefficients; fewer than the model's are padded with zeros.
        jaw: [3] axis-angle.
        eyes: [6] axis-angle of the left eye, then the right eye.
        eyelids: [2] left and right closure, or [0] (the release's FLAME has no eyelid
            blendshapes: a network avatar ignores them).
    """

    expression: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    eyelids: np.ndarray

    @classmethod
    def from_fit(cls, fit: FlameParams) -> FlamePose:
        """The articulation of a FLAME fit (its shape and head pose left out)."""
        return cls(fit.expression, fit.jaw, fit.eyes, fit.eyelids)

    def release_coefficients(self, n_expression: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of one for :class:`ReleaseFlame`: expression [1, n_expression] (padded or
        cut), pose [1, 6] (global rotation zero, then the jaw), eyes [1, 6]; float32."""
        expression = np.zeros(n_expression, dtype=np.float32)
        count = min(n_expression, len(self.expression))
        expression[:count] = self.expression[:count]
        pose = np.concatenate([np.zeros(3), np.asarray(self.jaw, dtype=np.float64)])

        def batch(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values, dtype=np.float32)[None])

        return batch(expression), batch(pose), batch(self.eyes)


@dataclass(frozen=True, eq=False)
class AttachedFlame:
    """The user's FLAME model, attached to a rig at run time.

    Attributes:
        posing: the model in the release's convention, which poses the rig.
        fitting: the same model with a landmark embedding, which the tracker fits to a driver.
    """

    posing: ReleaseFlame
    fitting: FlameLayer

    @classmethod
    def load(cls, flame_file: Path, config: Config) -> AttachedFlame:
        """The FLAME model of ``flame_file`` both ways (``config.flame`` picks the embedding), the
        file read once."""
        model = load_flame_model(flame_file)
        return cls(ReleaseFlame(model), fitting_flame_layer(model, flame_file, release_fitting_config(config).flame))


def rig_flame_file(given: str | Path | None) -> Path | None:
    """The FLAME file for a network avatar's rig: the one ``given`` (which must exist), else the
    release's ``FLAME_with_eye.pt`` in the models folder when it is there, else None."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ModelFileError(f"FLAME model not found: {path}")
        return path
    default = resolve_model_file(RELEASE_FLAME_FILE)
    return default if default.is_file() else None


def release_fitting_config(config: Config) -> Config:
    """``config`` with the release's camera focal, FLAME shape and expression counts and scale:
    how network avatars' photos and drivers are fitted."""
    return dataclasses.replace(
        config,
        camera=dataclasses.replace(config.camera, focal_normalized=RELEASE_FOCAL),
        flame=dataclasses.replace(config.flame, n_shape=RELEASE_SHAPE, n_expression=RELEASE_EXPRESSION,
                                  scale=RELEASE_SCALE),
    )  # fmt: skip


def fitting_layer(flame_file: Path, config: Config) -> FlameLayer:
    """The FLAME model that fits photos and drivers for a network avatar
    (:func:`release_fitting_config`), with the landmark embedding :func:`core.flame.load_flame_layer` picks."""
    return load_flame_layer(flame_file, release_fitting_config(config).flame)


@dataclass(frozen=True, eq=False)
class FlameRig:
    """See the module docstring.

    Attributes:
        shape: [n_shape] the source's FLAME shape.
        offsets: [V, 3] float32 learned template offsets, FLAME metres (added before the
            blendshapes, as the release does).
        source: the source photo's articulation.
        scale: FLAME metres to world units (the release's 5.0).
        model: the FLAME model, or None until :meth:`with_model`.
    """

    shape: np.ndarray
    offsets: np.ndarray
    source: FlamePose
    scale: float
    model: AttachedFlame | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", np.asarray(self.shape, dtype=np.float32))
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.float32))

    def with_model(self, model: AttachedFlame) -> FlameRig:
        """This rig posed by ``model`` (from the user's FLAME file): it must have the rig's
        vertex and shape component counts, and the rig's scale."""
        flame = model.posing
        vertices, n_shape = flame.num_vertices, flame.n_shape
        if vertices != len(self.offsets) or n_shape != len(self.shape):
            raise ModelFileError(
                f"the FLAME model has {vertices} vertices and {n_shape} shape components, this avatar's "
                f"rig {len(self.offsets)} and {len(self.shape)}: use the FLAME file it was reconstructed with"
            )
        if flame.scale != self.scale:
            raise ModelFileError(f"the FLAME model's scale is {flame.scale}, this avatar's rig {self.scale}")
        return dataclasses.replace(self, model=model)

    def posed(self, pose: FlamePose) -> np.ndarray:
        """[V, 3] float32 world vertices at ``pose`` (no head rotation)."""
        if self.model is None:
            raise ModelFileError("posing this avatar's expressions needs its FLAME model: give the FLAME file")
        flame = self.model.posing
        expression, jaw_pose, eyes = pose.release_coefficients(flame.n_expression)
        with torch.no_grad():
            vertices = flame(torch.from_numpy(self.shape[None]), expression, jaw_pose, eyes,
                             torch.from_numpy(self.offsets[None]))  # fmt: skip
        return vertices[0].numpy()
