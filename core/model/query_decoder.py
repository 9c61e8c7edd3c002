"""The query decoder of the released OMG-Avatar (its ``transformer``): one learned query per
FLAME vertex (the network's ``head_base``) attends to the other queries and to the photo's
DINOv2 tokens, giving the per-vertex global features at level 0.

Both inputs are first projected to C channels (``input_projection``, ``memory_projection``);
``decoder`` is torch's own ``nn.TransformerDecoder`` of standard post-norm layers (self-
attention over all queries, cross-attention to the tokens, ReLU feed-forward), without masks,
positional encodings or a final norm. Attribute names are the release's (its keys below
``transformer.``).

Self-attention over all 5,023 queries is the costly part. Out of training, torch's
``nn.MultiheadAttention`` takes an inference fast path for self-attention that on the CPU
computes the whole [heads, V, V] attention matrix: at 5,023 queries 800 MB more memory and about
2.5 times the time of its general path, which runs ``scaled_dot_product_attention`` (the same
maths, within 1e-6). :class:`SelfAttention` keeps the layers on the general path.
"""

from __future__ import annotations

from torch import Tensor, nn

#: Dropout inside the decoder layers during training, as the release trained them.
DROPOUT = 0.1


class QueryDecoder(nn.Module):
    """Queries [V, C] and image tokens [B, T, D] -> per-vertex features [B, V, C].

    Args:
        feature_dim: C (the release's ``DIM``, 256).
        token_dim: D, the ViT's width (768).
        layers: decoder layers (the release's ``N_TRANSFORMER_LAYERS``, 2 in the paper's model).
        heads: attention heads (8).
        feedforward: hidden width of a layer's feed-forward network (1024).
    """

    def __init__(
        self, feature_dim: int = 256, token_dim: int = 768, layers: int = 2, heads: int = 8, feedforward: int = 1024
    ) -> None:
        super().__init__()
        self.input_projection = nn.Linear(feature_dim, feature_dim)
        self.memory_projection = nn.Linear(token_dim, feature_dim)
        layer = nn.TransformerDecoderLayer(feature_dim, heads, feedforward, dropout=DROPOUT, batch_first=True)
        layer.self_attn = SelfAttention(feature_dim, heads, dropout=DROPOUT, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)  # copies the layer

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        queries = queries.expand(tokens.shape[0], -1, -1)
        return self.decoder(self.input_projection(queries), self.memory_projection(tokens))


class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` (the same parameters and maths) that never takes torch's
    inference fast path (see the module docstring)."""

    def forward(self, query: Tensor, key: Tensor, value: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor | None]:
        # The fast path only takes the very same tensor as query, key and value; a view of the
        # keys is another tensor object over the same data.
        return super().forward(query, key.view_as(key), value, *args, **kwargs)
