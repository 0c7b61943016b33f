"""``adapter``: bottleneck adapters in the frozen evaluator and generator, trained every period.

Parameter patching (PeterRec, Yuan et al., SIGIR 2020; bottleneck adapters, Houlsby et al.,
ICML 2019): the pretrained network stays frozen and a small residual module, inserted after
its hidden layer, is the only thing that learns. The up-projection starts at zero, so the agent
serves exactly what ``static`` serves until its first update. Every ``period`` requests it runs
``incremental``'s update schedule on the feedback of that period (one BCE pass for the
evaluator, imitation of the clicked orders and a few policy-gradient steps for the generator),
but only the adapters move (see :mod:`driftrank.adapt.adapters`): a patch can bend the model
towards the new data without the catastrophic forgetting a full fine-tune risks, at the price of
a smaller range of corrections.

:class:`PatchAgent` is the shared loop (buffer the period's feedback, train the patches); the
``film`` agent reuses it with FiLM patches.
"""

from __future__ import annotations

import numpy as np

from ..adapt.adapters import adapt_evaluator, adapt_generator
from ..adapt.patches import PatchedModel, train_patches
from .base import AgentContext
from .labels import FeedbackBuffer
from .registry import register_agent
from .static import PretrainedAgent


class PatchAgent(PretrainedAgent):
    """Frozen pretrained models + trainable patches, refit on each period's feedback.

    Subclasses build the patched models in :meth:`patch`; ``self.evaluator`` and
    ``self.generator`` are then the :class:`PatchedModel` wrappers (their ``state_dict``
    holds the frozen base and the patches).
    """

    def __init__(self, context: AgentContext, period: int = 2000, evaluator_lr: float = 3e-3,
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
        self.evaluator, self.generator = self.patch(self.evaluator, self.generator)

    def patch(self, evaluator, generator) -> tuple[PatchedModel, PatchedModel]:
        raise NotImplementedError

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.greedy(obs).astype(np.int64)

    def observe(self, feedback) -> None:
        self.feedback.add(feedback)  # learned from once its clicks are in (see labels.py)

    def on_period(self, step: int) -> None:
        data = self.feedback.take()
        if data is None:
            return
        train_patches(self.evaluator, self.generator, data, seed=int(self.rng.integers(2**31)),
                      evaluator_lr=self.evaluator_lr, generator_lr=self.generator_lr,
                      imitation=self.imitation, pg_steps=self.pg_steps)
        self.updates += 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "updates": self.updates,
                "feedback": self.feedback.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.updates = state["updates"]
        self.feedback.load_state_dict(state["feedback"])


@register_agent("adapter", "frozen models + bottleneck adapters trained every period (PeterRec)")
class AdapterAgent(PatchAgent):
    name = "adapter"

    def __init__(self, context: AgentContext, period: int = 2000, bottleneck: int = 8,
                 evaluator_lr: float = 3e-3, generator_lr: float = 1e-3, imitation: bool = True,
                 pg_steps: int = 10, pretrain_config: dict | None = None):
        if isinstance(bottleneck, bool) or int(bottleneck) != bottleneck or bottleneck < 1:
            raise ValueError(f"bottleneck={bottleneck!r} must be an integer >= 1")
        self.bottleneck = int(bottleneck)
        super().__init__(context, period=period, evaluator_lr=evaluator_lr,
                         generator_lr=generator_lr, imitation=imitation, pg_steps=pg_steps,
                         pretrain_config=pretrain_config)

    def patch(self, evaluator, generator):
        seed = int(self.context.seed)
        return (adapt_evaluator(evaluator, self.bottleneck, seed),
                adapt_generator(generator, self.bottleneck, seed))
