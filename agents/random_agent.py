"""``random``: K distinct candidates in random order. The floor every agent must beat."""

from __future__ import annotations

import numpy as np

from .base import AgentContext, BaseAgent
from .registry import register_agent


@register_agent("random", "K distinct candidates in random order (the floor)")
class RandomAgent(BaseAgent):
    name = "random"

    def __init__(self, context: AgentContext):
        super().__init__(context)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        b, n = obs["candidate_ids"].shape
        keys = self.rng.random((b, n))
        return np.argpartition(keys, self.context.slate_size - 1, axis=1)[
            :, : self.context.slate_size].astype(np.int64)
