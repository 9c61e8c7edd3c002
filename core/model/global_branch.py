"""The global branch: one learned query per FLAME vertex attends to the photo's identity
tokens (F_global at level 0), and the offset MLP on F_global that moves the vertices (eq. 1).

Each decoder layer is pre-norm cross-attention followed by an MLP, both residual. The
queries do not attend to each other: self-attention over V = 5,023 queries would cost
V^2 per head, and every query already sees the whole photo through the identity tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Hidden width of a decoder layer's MLP, in feature dims.
MLP_RATIO = 4
#: Standard deviation of the positional encodings at initialisation (ViT's).
QUERY_INIT_STD = 0.02
#: The offset MLP's last layer starts this small, so the head starts as plain FLAME
#: (world units; FLAME x5 spans about 1.2 units).
OFFSET_INIT_GAIN = 1e-3


class CrossAttentionLayer(nn.Module):
    """``q + Attn(LN(q), m, m)``, then ``q + MLP(LN(q))``; queries [B, V, C], memory [B, T, C]."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        attended, _ = self.attention(self.norm_query(queries), memory, memory, need_weights=False)
        queries = queries + attended
        return queries + self.mlp(self.norm_mlp(queries))


class GlobalBranch(nn.Module):
    """Identity tokens [B, T, D] -> F_global [B, V, C] at level 0.

    Args:
        num_vertices: V, FLAME's vertex count (one learned query of dim C each).
        identity_dim: D, the backbone's token dim (projected to C).
        feature_dim: C.
        layers, heads: decoder depth and attention heads.
    """

    def __init__(self, num_vertices: int, identity_dim: int, feature_dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_vertices, feature_dim) * QUERY_INIT_STD)
        self.project = nn.Sequential(nn.Linear(identity_dim, feature_dim), nn.LayerNorm(feature_dim))
        self.layers = nn.ModuleList(CrossAttentionLayer(feature_dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(feature_dim)

    def forward(self, identity: Tensor) -> Tensor:
        memory = self.project(identity)
        features = self.queries.expand(identity.shape[0], -1, -1)
        for layer in self.layers:
            features = layer(features, memory)
        return self.norm(features)


class OffsetMlp(nn.Module):
    """F_global [B, V, C] -> vertex offsets [B, V, 3] in world units (eq. 1)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.GELU(), nn.Linear(feature_dim, 3))
        with torch.no_grad():
            self.mlp[-1].weight.mul_(OFFSET_INIT_GAIN)
            self.mlp[-1].bias.zero_()

    def forward(self, features: Tensor) -> Tensor:
        return self.mlp(features)
