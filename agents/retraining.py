"""The periodic-retraining loop that ``incremental``, ``reloop``, ``adapter`` and ``film`` share.

Each of them serves the greedy slate of its current models, buffers the feedback of the slates
it served (learning from a batch only once its clicks are in, see :mod:`.labels`) and, every
``period`` requests, refits on that period's feedback. They differ only in *what* a refit moves
(the whole models, or small patches on frozen ones), which is :meth:`RetrainingAgent.update`.
Keeping the loop in one place keeps the comparison between them about that difference alone.
"""

from __future__ import annotations

import numpy as np

from .base import AgentContext
from .labels import FeedbackBuffer
from .static import PretrainedAgent

__all__ = ["RetrainingAgent"]


class RetrainingAgent(PretrainedAgent):
    """Greedy serving + a refit on each period's feedback; subclasses implement :meth:`update`.

    ``period``: requests between refits (the runner calls :meth:`on_period`); ``evaluator_lr``,
    ``generator_lr``: learning rates of the refit; ``imitation``: imitate the clicked orders;
    ``pg_steps``: policy-gradient steps against the refreshed evaluator.
    """

    def __init__(self, context: AgentContext, period: int = 2000, evaluator_lr: float = 1e-3,
                 generator_lr: float = 1e-3, imitation: bool = True, pg_steps: int = 10,
                 pretrain_config: dict | None = None):
        super().__init__(context, pretrain_config)
        if isinstance(period, bool) or int(period) != period or period < 1:
            raise ValueError(f"period={period!r} must be an integer >= 1 request")
        if evaluator_lr <= 0 or generator_lr <= 0 or pg_steps < 0:
            raise ValueError(f"need evaluator_lr > 0, generator_lr > 0 and pg_steps >= 0, got "
                             f"{evaluator_lr}, {generator_lr}, {pg_steps}")
        self.period = int(period)
        self.evaluator_lr = evaluator_lr
        self.generator_lr = generator_lr
        self.imitation = imitation
        self.pg_steps = int(pg_steps)
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
        self.update(data, seed=int(self.rng.integers(2**31)))
        self.updates += 1

    def update(self, data: dict, seed: int) -> None:
        """Refit on one period's feedback (arrays as :class:`.labels.FeedbackBuffer` joins them)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {**super().state_dict(), "updates": self.updates,
                "feedback": self.feedback.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.updates = state["updates"]
        self.feedback.load_state_dict(state["feedback"])
