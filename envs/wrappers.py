"""``ScoreActionWrapper``: act with one score per candidate; the slate is the top K.

Generic RL libraries (RLlib, Stable-Baselines3) handle ``Box`` actions far better than a
``MultiDiscrete`` with a distinctness constraint. With this wrapper the action is ``Box(N)``
of scores and the env serves the K best-scored candidates in descending order, so every action
is a valid slate of distinct items. Ties break toward the lower index. Only the order of the
scores matters, so the declared range is [-1, 1] (``score_bound``), the normalised range
generic RL libraries expect.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ScoreActionWrapper(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Action = one score per candidate (``Box(N)``); the env serves the top K.

    Records its constructor arguments (``RecordConstructorArgs``) like Gymnasium's own
    wrappers, so ``check_env`` and ``env.spec`` can rebuild the wrapped env.
    """

    def __init__(self, env: gym.Env, score_bound: float = 1.0):
        gym.utils.RecordConstructorArgs.__init__(self, score_bound=score_bound)
        gym.ActionWrapper.__init__(self, env)
        base = env.unwrapped
        self._n = base.config.n_candidates
        self._k = base.config.slate_size
        self.action_space = gym.spaces.Box(-score_bound, score_bound, (self._n,), np.float32)

    def action(self, scores):
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (self._n,):
            raise ValueError(f"scores have shape {scores.shape}, expected ({self._n},): "
                             "one score per candidate")
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores contain NaN or inf; give every candidate a finite score")
        return top_k_slate(scores[None, :], self._k)[0]


def top_k_slate(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, N) scores -> (B, K) indices of the K highest, best first (stable on ties)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k].astype(np.int64)
