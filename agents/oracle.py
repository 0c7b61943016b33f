"""``oracle``: the greedy-on-truth reference slate. An upper reference, not a real agent.

It is the only agent that reads the world's truth (``needs_world = True``), so its reward is
what a perfect model of the current click model would earn; regret of every other agent is
measured against the same reference slate.
"""

from __future__ import annotations

import numpy as np

from .base import AgentContext, BaseAgent
from .registry import register_agent


@register_agent("oracle", "greedy on the true click probabilities (reads truth; upper bound)")
class OracleAgent(BaseAgent):
    name = "oracle"
    needs_world = True

    def __init__(self, context: AgentContext):
        super().__init__(context)
        self.world = None

    def attach_world(self, world) -> None:
        self.world = world

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.world is None:
            raise RuntimeError(f"{self.name} needs attach_world(world) before act()")
        return self.slates(self.world)

    @staticmethod
    def slates(world) -> np.ndarray:
        """The slates this reference serves for the world's pending requests."""
        return world.reference_slates()
