"""Bottleneck adapters: a residual parameter patch for a frozen network.

``h' = h + W_up relu(W_down h)`` with a bottleneck narrower than ``h``. The up-projection starts
at zero, so a freshly inserted adapter is the identity and the patched model serves exactly what
the pretrained one did until feedback moves it (Houlsby et al., ICML 2019; PeterRec, Yuan et
al., SIGIR 2020, which patches a frozen pretrained recommender this way and trains only the
patches on the new task). Only ``2 * H * bottleneck + H + bottleneck`` numbers are trained per
insertion point, so one period of feedback cannot overwrite what the base learned offline.
"""

from __future__ import annotations

import torch
from torch import nn

from .patches import EVALUATOR_SITE, GENERATOR_SITE, PatchedModel, hidden_size


class BottleneckAdapter(nn.Module):
    """Residual bottleneck on the last dimension; the identity at initialisation."""

    def __init__(self, dim: int, bottleneck: int = 8, seed: int = 0):
        super().__init__()
        if dim < 1 or bottleneck < 1:
            raise ValueError(f"adapter needs dim >= 1 and bottleneck >= 1, got {dim}, "
                             f"{bottleneck}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.down = nn.Linear(dim, bottleneck)
            self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(torch.relu(self.down(h)))


def with_adapter(model: nn.Module, site: str, bottleneck: int = 8, seed: int = 0) -> PatchedModel:
    """``model`` frozen, with one zero-initialised adapter after sub-module ``site``."""
    return PatchedModel(model, {site: BottleneckAdapter(hidden_size(model), bottleneck, seed)})


def adapt_evaluator(evaluator: nn.Module, bottleneck: int = 8, seed: int = 0) -> PatchedModel:
    """Adapter on the evaluator's per-position hidden vector (what its click head reads)."""
    return with_adapter(evaluator, EVALUATOR_SITE, bottleneck, seed)


def adapt_generator(generator: nn.Module, bottleneck: int = 8, seed: int = 0) -> PatchedModel:
    """Adapter on the generator's candidate states (what its pointer and decoder read)."""
    return with_adapter(generator, GENERATOR_SITE, bottleneck, seed + 1)
