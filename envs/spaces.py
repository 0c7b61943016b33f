"""Gymnasium spaces of one request; vector envs batch them with ``batch_space``.

All bounds are finite (features are clipped to +-10 by the world), so generic RL libraries can
normalise observations without guessing.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .config import WorldConfig
from .world import FEATURE_BOUND

MAX_ITEM_ID = 2**62  # ids grow with catalog churn; any realistic run stays far below


def observation_space(c: WorldConfig) -> spaces.Dict:
    f = FEATURE_BOUND
    return spaces.Dict(
        {
            "user": spaces.Box(-f, f, (c.user_feature_dim,), np.float32),
            "candidates": spaces.Box(-f, f, (c.n_candidates, c.item_feature_dim), np.float32),
            "candidate_ids": spaces.Box(0, MAX_ITEM_ID, (c.n_candidates,), np.int64),
            "context": spaces.Box(-f, f, (c.context_dim,), np.float32),
            "user_id": spaces.Box(0, c.n_users - 1, (), np.int64),
        }
    )


def action_space(c: WorldConfig) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete(np.full(c.slate_size, c.n_candidates, dtype=np.int64))
