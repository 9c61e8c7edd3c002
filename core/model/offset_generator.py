"""The vertex-offset generator of the released OMG-Avatar (its ``gs_generator_offset``):
per-vertex features of the query decoder and the view-direction code to a small offset of
FLAME's template, the learned correction of the head's shape (the paper's eq. 1)."""

from __future__ import annotations

from torch import Tensor, nn

from core.model.direction_code import DIRECTION_CODE_DIM, with_direction_code

#: Largest offset per axis, in metres (FLAME's unit; the avatar's world is FLAME x 5).
MAX_OFFSET = 0.05


class OffsetGenerator(nn.Module):
    """Features [B, V, C] and the view-direction code [B, 27] -> offsets [B, V, 3] in metres,
    ``MAX_OFFSET * tanh(MLP(features, code))``; added to FLAME's template before blend shapes.

    Args:
        feature_dim: C (256 in the release).
        hidden: the MLP's hidden width (128 in the release).
    """

    def __init__(self, feature_dim: int = 256, hidden: int = 128) -> None:
        super().__init__()
        # A Sequential, so that the keys are the release's offset_layers.0 and .2.
        self.offset_layers = nn.Sequential(
            nn.Linear(feature_dim + DIRECTION_CODE_DIM, hidden), nn.ReLU(), nn.Linear(hidden, 3), nn.Tanh()
        )

    def forward(self, features: Tensor, code: Tensor) -> Tensor:
        return self.offset_layers(with_direction_code(features, code)) * MAX_OFFSET
