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

:class:`PatchAgent` trains patches inside the shared periodic loop
(:class:`~driftrank.agents.retraining.RetrainingAgent`); the ``film`` agent reuses it with
FiLM patches.
"""

from __future__ import annotations

from ..adapt.adapters import adapt_evaluator, adapt_generator
from ..adapt.patches import PatchedModel, train_patches
from .base import AgentContext
from .registry import register_agent
from .retraining import RetrainingAgent


class PatchAgent(RetrainingAgent):
    """Frozen pretrained models + trainable patches, refit on each period's feedback.

    Subclasses build the patched models in :meth:`patch`; ``self.evaluator`` and
    ``self.generator`` are then the :class:`PatchedModel` wrappers (their ``state_dict``
    holds the frozen base and the patches).
    """

    def __init__(self, context: AgentContext, period: int = 2000, evaluator_lr: float = 3e-3,
                 generator_lr: float = 1e-3, imitation: bool = True, pg_steps: int = 10,
                 pretrain_config: dict | None = None):
        super().__init__(context, period=period, evaluator_lr=evaluator_lr,
                         generator_lr=generator_lr, imitation=imitation, pg_steps=pg_steps,
                         pretrain_config=pretrain_config)
        self.evaluator, self.generator = self.patch(self.evaluator, self.generator)

    def patch(self, evaluator, generator) -> tuple[PatchedModel, PatchedModel]:
        raise NotImplementedError

    def update(self, data: dict, seed: int) -> None:
        train_patches(self.evaluator, self.generator, data, seed=seed,
                      evaluator_lr=self.evaluator_lr, generator_lr=self.generator_lr,
                      imitation=self.imitation, pg_steps=self.pg_steps)


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
