"""``stale-oracle``: greedy on the truth *frozen at the start of the episode*.

What a perfect model of the pretraining world would serve: it knows every user's taste, every
item's quality and the topic popularity exactly as they were when the episode began, and learns
nothing afterwards (users and items that arrive later count at the prior mean). ``oracle`` minus
``stale-oracle`` per window is the adaptation headroom: what a ranker loses by not updating.
Like ``oracle`` it reads the world (``needs_world = True``); it is a reference, not an agent to
deploy.
"""

from __future__ import annotations

import numpy as np

from .oracle import OracleAgent
from .registry import register_agent


@register_agent("stale-oracle",
                "greedy on the truth frozen at the episode start (reads truth; headroom control)")
class StaleOracleAgent(OracleAgent):
    name = "stale-oracle"

    @staticmethod
    def slates(world) -> np.ndarray:
        return world.frozen_reference_slates()
