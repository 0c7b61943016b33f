"""``incremental`` and ``reloop``: periodic retraining on fresh feedback.

The standard industrial answer to drift (IncCTR-style incremental learning): collect the
feedback of the slates served since the last period, fine-tune the evaluator on it for one pass,
fine-tune the generator on it (imitation of the clicked orders, then a few policy-gradient
steps against the refreshed evaluator), and serve the new versions until the next period.
Adaptation is as fast as the period allows and no faster.

``reloop`` is the same loop with the ReLoop self-correction loss: the evaluator is also
penalised where it is worse than its previous version on the new labels
(L = a * L_sc + (1 - a) * L_ce), which the ReLoop paper found speeds up recovery.

Only clicks are used as labels (conversions arrive late and the evaluator predicts clicks).
"""

from __future__ import annotations

import copy

import numpy as np

from .. import evaluator as ev
from .. import generator as gen
from .base import AgentContext
from .labels import FeedbackBuffer
from .registry import register_agent
from .static import PretrainedAgent


@register_agent("incremental", "retrains evaluator + generator on fresh feedback every period")
class IncrementalAgent(PretrainedAgent):
    name = "incremental"
    config_ranges = {"period": ">= 1", "evaluator_lr": "> 0", "generator_lr": "> 0",
                     "pg_steps": ">= 0", "reloop_alpha": "[0, 1]"}

    def __init__(
        self,
        context: AgentContext,
        period: int = 2000,
        evaluator_lr: float = 1e-3,
        generator_lr: float = 1e-3,
        imitation: bool = True,
        pg_steps: int = 10,
        reloop_alpha: float = 0.0,
        pretrain_config: dict | None = None,
    ):
        super().__init__(context, pretrain_config)
        if period < 1:
            raise ValueError(f"period={period} must be >= 1 request")
        if not 0.0 <= reloop_alpha <= 1.0:
            raise ValueError(f"reloop_alpha={reloop_alpha} must lie in [0, 1]")
        self.period = int(period)
        self.evaluator_lr = evaluator_lr
        self.generator_lr = generator_lr
        self.imitation = imitation
        self.pg_steps = pg_steps
        self.reloop_alpha = reloop_alpha
        self.updates = 0
        self.feedback = FeedbackBuffer(context.world.click_delay, owner=self.name)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.greedy(obs).astype(np.int64)

    def observe(self, feedback) -> None:
        self.feedback.add(feedback)  # learned from once its clicks are in (see labels.py)

    def on_period(self, requests: int) -> None:
        data = self.feedback.take()
        if data is None:
            return
        seed = int(self.rng.integers(2**31))
        previous = copy.deepcopy(self.evaluator).eval() if self.reloop_alpha > 0 else None
        self.evaluator.train()
        ev.train_evaluator(self.evaluator, data, epochs=1, lr=self.evaluator_lr, seed=seed,
                           reloop_alpha=self.reloop_alpha, previous=previous)
        self.evaluator.eval()
        self.generator.train()
        if self.imitation:
            gen.train_imitation(self.generator, data, epochs=1, lr=self.generator_lr, seed=seed)
        if self.pg_steps:
            gen.train_policy_gradient(self.generator, self.evaluator, data, steps=self.pg_steps,
                                      lr=self.generator_lr, seed=seed)
        self.generator.eval()
        self.updates += 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "updates": self.updates,
                "feedback": self.feedback.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.updates = state["updates"]
        self.feedback.load_state_dict(state["feedback"])


@register_agent("reloop", "incremental + ReLoop self-correction loss against the last version")
class ReLoopAgent(IncrementalAgent):
    name = "reloop"

    def __init__(self, context: AgentContext, period: int = 2000, evaluator_lr: float = 1e-3,
                 generator_lr: float = 1e-3, imitation: bool = True, pg_steps: int = 10,
                 reloop_alpha: float = 0.5, pretrain_config: dict | None = None):
        super().__init__(context, period=period, evaluator_lr=evaluator_lr,
                         generator_lr=generator_lr, imitation=imitation, pg_steps=pg_steps,
                         reloop_alpha=reloop_alpha, pretrain_config=pretrain_config)
