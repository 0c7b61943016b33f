"""Gymnasium spaces of one request; vector envs batch them with ``batch_space``.

All bounds are finite and honest (features are clipped to +-10 by the world; ids are bounded
by what the episode can create), so generic RL libraries can normalise observations without
guessing. Ids are identifiers, not magnitudes: a generic policy should embed or hash them, or
drop them (see the README's generic-RL section).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .catalog import FEATURE_BOUND
from .config import WorldConfig


def max_item_id(c: WorldConfig, horizon: int) -> int:
    """Largest item id an episode of ``horizon`` ticks can show (churn adds fresh ids)."""
    if c.churn_interval <= 0:
        return c.n_items - 1
    per_event = max(1, int(round(c.churn_fraction * c.n_items)))
    return c.n_items - 1 + per_event * (horizon // c.churn_interval + 1)


def max_user_id(c: WorldConfig, horizon: int) -> int:
    """Largest user id an episode of ``horizon`` ticks can show (at most one joiner a tick)."""
    return c.n_users - 1 + (horizon if c.join_rate > 0 else 0)


def observation_space(c: WorldConfig, horizon: int | None = None) -> spaces.Dict:
    """The observation of one request in an episode of ``horizon`` ticks (default
    ``max_steps``, i.e. one request per step)."""
    f = FEATURE_BOUND
    horizon = c.max_steps if horizon is None else int(horizon)
    return spaces.Dict(
        {
            "user": spaces.Box(-f, f, (c.user_feature_dim,), np.float32),
            "candidates": spaces.Box(-f, f, (c.n_candidates, c.item_feature_dim), np.float32),
            "candidate_ids": spaces.Box(0, max_item_id(c, horizon), (c.n_candidates,),
                                        np.int64),
            "context": spaces.Box(-f, f, (c.context_dim,), np.float32),
            "user_id": spaces.Box(0, max_user_id(c, horizon), (), np.int64),
        }
    )


def action_space(c: WorldConfig) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete(np.full(c.slate_size, c.n_candidates, dtype=np.int64))
