"""``static``: the pretrained generator, frozen. What you get if you never adapt.

Every model-based agent starts from the same offline phase (:mod:`driftrank.agents.pretrained`),
so their differences online come from how they adapt, not from how they were trained. The
checkpoints are built once per world config by ``prepare`` (the grid calls it in the driver
before cells start) and loaded from the cache by every cell.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import AgentContext, BaseAgent
from .pretrained import PretrainConfig, model_inputs, pretrain
from .registry import register_agent


class PretrainedAgent(BaseAgent):
    """Base for agents built on the pretrained evaluator + generator."""

    def __init__(self, context: AgentContext, pretrain_config: dict | None = None):
        super().__init__(context)
        self.pretrain_config = PretrainConfig().replace(**(pretrain_config or {}))
        models = pretrain(context.world, config=self.pretrain_config,
                          cache_dir=context.cache_dir, threads=context.threads)
        self.evaluator = models.evaluator
        self.generator = models.generator
        self.pretrain_metrics = models.metrics
        self.torch_gen = torch.Generator().manual_seed(int(context.seed) * 7919 + 17)

    @classmethod
    def prepare(cls, context: AgentContext, pretrain_config: dict | None = None) -> None:
        """Build (or find) the pretrained checkpoints for this world config."""
        config = PretrainConfig().replace(**(pretrain_config or {}))
        pretrain(context.world, config=config, cache_dir=context.cache_dir,
                 threads=context.threads)

    @torch.inference_mode()
    def greedy(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = model_inputs(obs)
        return self.generator.greedy(x["user"], x["candidates"], x["candidate_ids"]).numpy()

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "evaluator": {k: v.clone() for k, v in self.evaluator.state_dict().items()},
            "generator": {k: v.clone() for k, v in self.generator.state_dict().items()},
            "torch_gen": self.torch_gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.evaluator.load_state_dict(state["evaluator"])
        self.generator.load_state_dict(state["generator"])
        self.torch_gen.set_state(state["torch_gen"])


@register_agent("static", "pretrained generator, greedy, never updated")
class StaticAgent(PretrainedAgent):
    name = "static"

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.greedy(obs).astype(np.int64)
