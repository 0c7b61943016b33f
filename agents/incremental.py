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

from .. import evaluator as ev
from .. import generator as gen
from .base import AgentContext
from .registry import register_agent
from .retraining import RetrainingAgent


@register_agent("incremental", "retrains evaluator + generator on fresh feedback every period")
class IncrementalAgent(RetrainingAgent):
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
        if not 0.0 <= reloop_alpha <= 1.0:
            raise ValueError(f"reloop_alpha={reloop_alpha} must lie in [0, 1]")
        self.reloop_alpha = reloop_alpha
        super().__init__(context, period=period, evaluator_lr=evaluator_lr,
                         generator_lr=generator_lr, imitation=imitation, pg_steps=pg_steps,
                         pretrain_config=pretrain_config)

    def update(self, data: dict, seed: int) -> None:
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


@register_agent("reloop", "incremental + ReLoop self-correction loss against the last version")
class ReLoopAgent(IncrementalAgent):
    name = "reloop"

    def __init__(self, context: AgentContext, period: int = 2000, evaluator_lr: float = 1e-3,
                 generator_lr: float = 1e-3, imitation: bool = True, pg_steps: int = 10,
                 reloop_alpha: float = 0.5, pretrain_config: dict | None = None):
        super().__init__(context, period=period, evaluator_lr=evaluator_lr,
                         generator_lr=generator_lr, imitation=imitation, pg_steps=pg_steps,
                         reloop_alpha=reloop_alpha, pretrain_config=pretrain_config)
