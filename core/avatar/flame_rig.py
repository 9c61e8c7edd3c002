"""The FLAME rig of a network avatar: its control mesh is FLAME re-posed per frame.

Per frame the head's control vertices are FLAME with the source's shape and the learned
vertex offsets of eq. 1, posed with the frame's expression, jaw, eyes and eyelids
(:class:`~core.model.posing.HeadPoser`, the network's own posing); the avatar then applies
the frame's head rotation and translation (:meth:`HeadRig.posed`).

What the avatar keeps, and why: the shape coefficients, the offsets and the source's
articulation (:class:`FlamePose`), plus vertices derived from them (the control mesh at
the source's expression, ``HeadRig.vertices``). It never holds FLAME's own data (template,
blendshapes, pose correctives, skinning weights): FLAME's licence forbids redistributing
the model, and an avatar file is something users share. So an avatar file loads, renders
and follows head motion without the FLAME file; posing a new expression needs the model,
attached at run time with :meth:`FlameRig.with_model` (``Avatar.with_flame``) from the
user's own FLAME file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import ModelFileError
from core.flame import FlameLayer, FlameParams
from core.model.posing import FlameCoefficients, HeadPoser


@dataclass(frozen=True)
class FlamePose:
    """One frame's FLAME articulation (float numpy arrays).

    Attributes:
        expression: [E] coefficients; fewer than the model's are padded with zeros.
        jaw: [3] axis-angle.
        eyes: [6] axis-angle of the left eye, then the right eye.
        eyelids: [2] left and right closure, or [0] (model without eyelid blendshapes).
    """

    expression: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    eyelids: np.ndarray

    @classmethod
    def from_fit(cls, fit: FlameParams) -> FlamePose:
        """The articulation of a FLAME fit (its shape and head pose left out)."""
        return cls(fit.expression, fit.jaw, fit.eyes, fit.eyelids)

    def coefficients(self, n_expression: int, has_eyelids: bool) -> FlameCoefficients:
        """A batch of one for a FLAME layer of ``n_expression`` components."""
        expression = np.zeros(n_expression)
        count = min(n_expression, len(self.expression))
        expression[:count] = self.expression[:count]

        def batch(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values, dtype=np.float32)[None])

        eyelids = batch(self.eyelids) if has_eyelids and len(self.eyelids) == 2 else None
        return FlameCoefficients(expression=batch(expression), jaw=batch(self.jaw), eyes=batch(self.eyes),
                                 eyelids=eyelids)  # fmt: skip


@dataclass(frozen=True, eq=False)
class FlameRig:
    """See the module docstring.

    Attributes:
        shape: [n_shape] the source's FLAME shape.
        offsets: [V, 3] float32 learned vertex offsets, world units, FLAME's rest pose.
        source: the source photo's articulation.
        scale: FLAME metres to world units (``FlameConfig.scale``).
        poser: the FLAME model posing them, or None until :meth:`with_model`.
    """

    shape: np.ndarray
    offsets: np.ndarray
    source: FlamePose
    scale: float
    poser: HeadPoser | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", np.asarray(self.shape, dtype=np.float32))
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.float32))

    def with_model(self, layer: FlameLayer) -> FlameRig:
        """This rig posed by ``layer`` (the user's FLAME file): it must have the rig's vertex
        and shape component counts."""
        vertices, n_shape = layer.v_template.shape[0], layer.n_shape
        if vertices != len(self.offsets) or n_shape != len(self.shape):
            raise ModelFileError(
                f"the FLAME model has {vertices} vertices and {n_shape} shape components, this avatar's "
                f"rig {len(self.offsets)} and {len(self.shape)}: use the FLAME file it was reconstructed with"
            )
        return dataclasses.replace(self, poser=HeadPoser(layer, self.scale))

    def posed(self, pose: FlamePose) -> np.ndarray:
        """[V, 3] float32 world vertices at ``pose`` (no head rotation)."""
        if self.poser is None:
            raise ModelFileError("posing this avatar's expressions needs its FLAME model: give the FLAME file")
        flame = self.poser.flame
        with torch.no_grad():
            vertices = self.poser(
                torch.as_tensor(self.shape[None], dtype=flame.v_template.dtype),
                torch.from_numpy(self.offsets[None]).to(flame.v_template.dtype),
                pose.coefficients(flame.n_expression, flame.has_eyelids),
            )
        return vertices[0].numpy().astype(np.float32)
