"""Catalog ids as a learned vector, hashed into a fixed number of buckets.

Both models (the evaluator here, and the generator, which may import from ``evaluator``) give
each item an id embedding on top of its features: features say what an item is like, the id
lets a model learn what is peculiar to one item. Ids are unbounded (new items keep arriving),
so they are hashed (modulo) into ``n_buckets`` rows; collisions are the price of a fixed size.
"""

from __future__ import annotations

import torch
from torch import nn


class HashedIdEmbedding(nn.Embedding):
    """``ids`` (any shape, int) -> (..., dim) vectors of ``ids mod n_buckets``; small initial
    weights, so the id term starts as a nudge to the features, not noise over them."""

    def __init__(self, n_buckets: int, dim: int):
        super().__init__(n_buckets, dim)
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.remainder(ids, self.num_embeddings))
