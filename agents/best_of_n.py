"""``best-of-n``: LAST's control. The same number of candidates as ``last`` (P = 8 by default:
the greedy slate plus P samples), the generator's own samples only, judged by the same
evaluator, no gradient. ``last`` minus ``best-of-n`` is what the search direction adds."""

from __future__ import annotations

from .base import AgentContext
from .last import SearchAgent
from .registry import register_agent


@register_agent("best-of-n", "control for LAST: greedy + P samples judged by the evaluator, "
                             "no gradient")
class BestOfNAgent(SearchAgent):
    name = "best-of-n"

    def __init__(self, context: AgentContext, candidates: int = 8, backend: str = "local",
                 ray_actors: int = 2, refresh_period: int | None = None,
                 refresh_lr: float = 1e-3, pretrain_config: dict | None = None):
        super().__init__(context, steps=(), resamples=int(candidates), memory=None,
                         backend=backend, ray_actors=ray_actors, refresh_period=refresh_period,
                         refresh_lr=refresh_lr, pretrain_config=pretrain_config)
