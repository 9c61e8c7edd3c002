"""FLAME coefficients in, the network's head vertices out: FLAME posed with the learned
vertex offsets of eq. 1.

The offsets are added to the rest shape (shape and expression blendshapes applied, no
pose) and posed with it, so they follow the jaw, the neck and the eyes; the joints stay
FLAME's. Offsets and results are in world units (FLAME metres times ``FlameConfig.scale``).
In GAGAvatar's convention, which the paper follows, ``rotation`` and ``translation`` stay
zero and the head pose is the camera's extrinsic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from core.flame.layer import FLAME_JOINTS, FlameLayer
from core.flame.lbs import pose_rest_points


@dataclass(frozen=True)
class FlameCoefficients:
    """A batch of FLAME coefficients, as :meth:`FlameLayer.forward` takes them (None: zeros).

    Attributes:
        shape: [B, n_shape]; only the source's is used (the avatar keeps its identity).
        expression: [B, n_expression].
        eyelids: [B, 2], for FLAME models with eyelid blendshapes.
        rotation, neck, jaw: [B, 3] axis-angle.
        eyes: [B, 6] axis-angle of the left eye, then the right eye.
        translation: [B, 3] FLAME metres.
    """

    shape: Tensor | None = None
    expression: Tensor | None = None
    eyelids: Tensor | None = None
    rotation: Tensor | None = None
    neck: Tensor | None = None
    jaw: Tensor | None = None
    eyes: Tensor | None = None
    translation: Tensor | None = None

    @property
    def batch_size(self) -> int | None:
        """B, or None when every field is None."""
        sizes = {int(value.shape[0]) for f in fields(self) if (value := getattr(self, f.name)) is not None}
        if len(sizes) > 1:
            raise ValueError(f"FlameCoefficients fields disagree on the batch size: {sorted(sizes)}")
        return sizes.pop() if sizes else None


class HeadPoser(nn.Module):
    """FLAME with per-vertex offsets, in world units.

    ``frozen``: the FLAME buffers come from the user's licensed file and are never stored in
    network checkpoints (see :mod:`core.model.checkpoint`).
    """

    frozen = True

    def __init__(self, flame: FlameLayer, scale: float) -> None:
        super().__init__()
        self.flame = flame
        self.scale = scale

    @property
    def num_vertices(self) -> int:
        return self.flame.v_template.shape[0]

    def forward(self, shape: Tensor, offsets: Tensor | None, coefficients: FlameCoefficients) -> Tensor:
        """Posed head vertices.

        Args:
            shape: [B, n_shape] identity; ``coefficients.shape`` is ignored.
            offsets: [B, V, 3] world-unit displacements of the rest shape, or None.
            coefficients: expression, eyelids and pose.

        Returns:
            [B, V, 3] world-space vertices.
        """
        c = coefficients
        rest, rest_joints = self.flame(shape=shape, expression=c.expression, eyelids=c.eyelids)
        batch = rest.shape[0]
        if offsets is not None:
            rest = rest + offsets / self.scale
        rotvecs = torch.cat(
            [
                rest.new_zeros(batch, size) if value is None else value.to(rest.dtype)
                for value, size in ((c.rotation, 3), (c.neck, 3), (c.jaw, 3), (c.eyes, 6))
            ],
            dim=1,
        ).view(batch, FLAME_JOINTS, 3)
        flame = self.flame
        vertices, _ = pose_rest_points(rest, rest_joints, rotvecs, flame.posedirs, flame.parents, flame.lbs_weights)
        if c.translation is not None:
            vertices = vertices + c.translation[:, None].to(rest.dtype)
        return vertices * self.scale
