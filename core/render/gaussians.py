"""The one container of 3D Gaussians that every backend and the PLY export take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

IndexLike = torch.Tensor | np.ndarray | slice | Sequence[int]


@dataclass(frozen=True, eq=False)
class Gaussians:
    """N Gaussians with C feature channels (C >= 1; the avatar uses 3 or 32).

    Attributes (torch tensors on one device with one floating dtype):
        means: [N, 3] world-space centres.
        quats: [N, 4] rotations as quaternions (w, x, y, z), gsplat's order. Renderers
            normalise them, so any non-zero quaternion is a valid rotation.
        scales: [N, 3] standard deviations along the rotated axes (not logs; may be 0).
        opacities: [N] in [0, 1] (not logits).
        features: [N, C] what is splatted: colour, or the network's feature channels.

    numpy arrays are accepted and converted with ``torch.as_tensor``.
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    features: torch.Tensor

    def __post_init__(self) -> None:
        fields = {name: torch.as_tensor(getattr(self, name)) for name in _FIELDS}
        n = fields["means"].shape[0] if fields["means"].ndim else -1
        expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,)}
        for name, shape in expected.items():
            if tuple(fields[name].shape) != shape:
                raise ValueError(
                    f"Gaussians.{name} must have shape {list(shape)} (N from means), "
                    f"got {list(fields[name].shape)}"
                )
        features = fields["features"]
        if features.ndim != 2 or features.shape[0] != n or features.shape[1] < 1:
            raise ValueError(f"Gaussians.features must have shape [{n}, C>=1], got {list(features.shape)}")
        dtype, device = fields["means"].dtype, fields["means"].device
        if not dtype.is_floating_point:
            raise ValueError(f"Gaussians need a floating dtype, got {dtype}")
        for name, value in fields.items():
            if value.dtype != dtype or value.device != device:
                raise ValueError(
                    f"Gaussians.{name} is {value.dtype} on {value.device}; means are {dtype} on {device}"
                )
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_channels(self) -> int:
        """C, the number of feature channels."""
        return self.features.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(
        cls, num_channels: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> "Gaussians":
        """Zero Gaussians with ``num_channels`` feature channels."""
        zeros = lambda *shape: torch.zeros(shape, dtype=dtype, device=device)  # noqa: E731
        return cls(zeros(0, 3), zeros(0, 4), zeros(0, 3), zeros(0), zeros(0, num_channels))

    @classmethod
    def cat(cls, parts: Sequence["Gaussians"]) -> "Gaussians":
        """Concatenate along N (e.g. head and shoulders); all parts need the same C, dtype, device."""
        if not parts:
            raise ValueError("Gaussians.cat needs at least one part")
        channels = {part.num_channels for part in parts}
        if len(channels) != 1:
            raise ValueError(f"cannot concatenate Gaussians with different channel counts {sorted(channels)}")
        return cls(*(torch.cat([getattr(part, name) for part in parts]) for name in _FIELDS))

    # ------------------------------------------------------------------ views
    def select(self, index: IndexLike) -> "Gaussians":
        """The Gaussians picked by ``index``: a boolean mask [N], integer indices, or a slice."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index if isinstance(index, torch.Tensor) else np.asarray(index))
            if index.dtype == torch.bool:
                if index.shape != (len(self),):
                    raise ValueError(f"boolean index must have shape [{len(self)}], got {list(index.shape)}")
            elif index.numel() == 0 or not index.dtype.is_floating_point:
                index = index.long()
            else:
                raise ValueError(f"index must be boolean or integer, got {index.dtype}")
            index = index.to(self.device)
        return Gaussians(*(getattr(self, name)[index] for name in _FIELDS))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Gaussians":
        """The same Gaussians on another device and/or with another floating dtype."""
        return Gaussians(*(getattr(self, name).to(device=device, dtype=dtype) for name in _FIELDS))

    def detach(self) -> "Gaussians":
        """The same values without autograd history."""
        return Gaussians(*(getattr(self, name).detach() for name in _FIELDS))


_FIELDS = ("means", "quats", "scales", "opacities", "features")
