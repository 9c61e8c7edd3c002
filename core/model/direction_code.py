"""The view-direction code of the released OMG-Avatar (its ``harmo_encoder``, pytorch3d's
``HarmonicEmbedding(4)``), and how per-point networks take it in.

A direction (d_x, d_y, d_z) becomes 27 values: sin(d_x f) for f = 1, 2, 4, 8, the same for d_y and
d_z, then the 12 cosines in that order, then d_x, d_y, d_z. The cosines are computed as
sin(a + pi / 2), as pytorch3d does: plain cos differs in the last bits, and the released
weights were trained on these values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

FREQUENCIES = 4
#: Values per direction: sines and cosines of 3 components at each frequency, plus the direction.
DIRECTION_CODE_DIM = 3 * (2 * FREQUENCIES + 1)


def direction_code(directions: Tensor) -> Tensor:
    """directions [..., 3] -> [..., DIRECTION_CODE_DIM] (see the module docstring)."""
    frequencies = 2.0 ** torch.arange(FREQUENCIES, dtype=directions.dtype, device=directions.device)
    angles = (directions[..., None] * frequencies).flatten(-2)  # [..., 3F], d_x's frequencies first
    return torch.cat([angles.sin(), (angles + math.pi / 2).sin(), directions], dim=-1)


def with_direction_code(features: Tensor, code: Tensor) -> Tensor:
    """Per-point features [B, N, C] and one code per image [B, K] -> [B, N, C + K]: every
    point sees its image's code after its own features, the release's input order."""
    return torch.cat([features, code[:, None].expand(-1, features.shape[1], -1)], dim=-1)
