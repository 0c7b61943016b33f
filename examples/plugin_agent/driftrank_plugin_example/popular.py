"""``popular``: rank candidates by the smoothed CTR feature, best first.

A complete third-party agent: no driftrank code changes, just the entry point in pyproject.toml
(group ``driftrank.agents``). ``make_agent("popular", context)`` then finds it.
"""

import numpy as np


class PopularAgent:
    name = "popular"

    def __init__(self, context, ctr_column: int = -2):
        self.k = context.slate_size
        self.ctr_column = ctr_column

    def act(self, obs):
        ctr = obs["candidates"][:, :, self.ctr_column]
        return np.argsort(-ctr, axis=1, kind="stable")[:, : self.k]

    def observe(self, feedback):
        pass  # the env's CTR feature already learns from every impression
