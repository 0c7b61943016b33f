"""``film``: FiLM layers in the frozen evaluator and generator, conditioned on recent feedback.

Feature-wise linear modulation (Perez et al., AAAI 2018): ``h' = gamma(c) * h + beta(c)`` on
the frozen models' hidden features, with ``c`` = the request's user input and a summary of
recent feedback (the decayed per-topic mean of the *frozen* evaluator's residuals, see
:mod:`driftrank.adapt.film`). The FiLM networks train every period on that period's feedback
with ``incremental``'s schedule (:class:`~driftrank.agents.adapter.PatchAgent`); the summary is
refreshed after every batch, so between updates the correction already follows what the
feedback says about each topic. The summary reads the frozen base, not the patched model, so a
correction that works does not erase the signal it was conditioned on.
"""

from __future__ import annotations

import torch

from ..adapt.film import ResidualSummary, film_model, set_summary
from ..adapt.patches import EVALUATOR_SITE, GENERATOR_SITE
from ..evaluator import gather_slate
from .adapter import PatchAgent
from .base import AgentContext
from .registry import register_agent


@register_agent("film", "frozen models + FiLM conditioned on recent residuals, trained per period")
class FiLMAgent(PatchAgent):
    name = "film"

    def __init__(self, context: AgentContext, period: int = 2000, film_hidden: int = 32,
                 half_life: float = 5_000.0, evaluator_lr: float = 3e-3,
                 generator_lr: float = 1e-3, imitation: bool = True, pg_steps: int = 10,
                 pretrain_config: dict | None = None):
        if isinstance(film_hidden, bool) or int(film_hidden) != film_hidden or film_hidden < 1:
            raise ValueError(f"film_hidden={film_hidden!r} must be an integer >= 1")
        self.film_hidden = int(film_hidden)
        self.summary = ResidualSummary(context.world.item_feature_dim, half_life=half_life)
        super().__init__(context, period=period, evaluator_lr=evaluator_lr,
                         generator_lr=generator_lr, imitation=imitation, pg_steps=pg_steps,
                         pretrain_config=pretrain_config)

    def patch(self, evaluator, generator):
        seed, dim = int(self.context.seed), self.summary.sums.shape[0]
        return (film_model(evaluator, EVALUATOR_SITE, dim, self.film_hidden, seed),
                film_model(generator, GENERATOR_SITE, dim, self.film_hidden, seed + 1))

    def observe(self, feedback) -> None:
        for data in self.feedback.add(feedback):  # batches whose clicks are in
            with torch.inference_mode(), self.evaluator.patches_off():
                items, ids = gather_slate(torch.as_tensor(data["candidates"]),
                                          torch.as_tensor(data["candidate_ids"]),
                                          torch.as_tensor(data["slates"]))
                predicted = self.evaluator(torch.as_tensor(data["user"]), items, ids).numpy()
            self.summary.update(data["clicks"] - predicted, items.numpy())
            value = self.summary.value()
            set_summary(self.evaluator, value)
            set_summary(self.generator, value)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "summary": self.summary.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.summary.load_state_dict(state["summary"])
