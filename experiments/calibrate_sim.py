"""Serving a popularity ranker in a world: the yardstick calibration is tuned and checked with.

A log's click-through rate depends on who ranked it; the closest public stand-in for an unknown
production ranker is popularity. ``popularity_run`` serves a world with slates ranked by a fixed
item-popularity score (the log's click counts, in a calibrated world) and returns the CTR and
the per-item clicks and per-user requests it produced; calibration shifts the attraction level
until that CTR is the log's. ``synthetic_log`` records a log from a known world (popularity
from the ranker's own running counts, with exploration), which the tests and the README use as
a log whose truth is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..envs.config import WorldConfig
from ..envs.world import World


@dataclass
class PopularityRun:
    ctr: float  # clicks / shown slots
    item_clicks: np.ndarray  # (M,) clicks per item slot
    item_impressions: np.ndarray  # (M,)
    user_requests: np.ndarray  # (U,) requests per user


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k candidate indices per row, ties broken by candidate index (deterministic)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


EPSILON = 0.2  # share of slots a popularity ranker gives to a random candidate (exploration)


def _explore(score: np.ndarray, rng: np.random.Generator, epsilon: float, k: int) -> np.ndarray:
    """Scores where random candidates jump above every popularity score at a random height, on
    average ``epsilon * k`` per request: about a share ``epsilon`` of the ``k`` slots explores."""
    top = np.abs(score).max() + 1.0
    lucky = rng.random(score.shape) < epsilon * k / score.shape[1]
    return np.where(lucky, top * (1.0 + rng.random(score.shape)), score)


def popularity_run(config: WorldConfig, popularity: np.ndarray, requests: int = 8192,
                   batch: int = 256, seed: int = 0, epsilon: float = EPSILON) -> PopularityRun:
    """Serve ``requests`` requests ranked by ``popularity`` (indexed by item id; ids beyond it,
    e.g. cold items after churn, count as 0), each slot showing a random unused candidate with
    probability ``epsilon`` (no production ranker shows only the head)."""
    world = World(config, batch, seed)
    rng = np.random.default_rng([seed, 0x907])
    pop = np.asarray(popularity, dtype=np.float64)
    m, u = config.n_items, config.n_users
    clicks = np.zeros(m)
    shown = np.zeros(m)
    user_requests = np.zeros(u)
    total_clicks = 0.0
    steps = max(1, requests // batch)
    for _ in range(steps):
        obs = world.observation()
        ids = obs["candidate_ids"]
        score = np.where(ids < pop.size, pop[np.minimum(ids, pop.size - 1)], 0.0)
        slates = _top_k(_explore(score, rng, epsilon, config.slate_size),
                       config.slate_size)
        np.add.at(user_requests, obs["user_id"], 1)
        out = world.serve(slates, with_truth=False)
        items = out["served_item_ids"].ravel()
        known = (items >= 0) & (items < m)  # ids past the catalog: cold items after churn
        np.add.at(shown, items[known], 1)
        np.add.at(clicks, items[known], out["clicks"].ravel()[known])
        total_clicks += float(out["clicks"].sum())
    return PopularityRun(ctr=total_clicks / (steps * batch * config.slate_size),
                         item_clicks=clicks, item_impressions=shown, user_requests=user_requests)


def synthetic_log(config: WorldConfig, requests: int = 20_000, batch: int = 200, seed: int = 0,
                  epsilon: float = 0.2) -> pd.DataFrame:
    """A log of impressions from a known world: one row per shown item, columns ``user``,
    ``item``, ``click``, ``timestamp`` (the request's tick).

    The logging policy ranks candidates by their smoothed click-through rate so far (what a
    popularity ranker knows), showing a random unused candidate in a slot with probability
    ``epsilon``.
    """
    world = World(config, batch, seed)
    rng = np.random.default_rng([seed, 0x106])
    clicks = np.zeros(16, np.float64)
    shown = np.zeros(16, np.float64)
    parts = []
    k = config.slate_size
    for _ in range(max(1, requests // batch)):
        obs = world.observation()
        ids = obs["candidate_ids"]
        need = int(ids.max()) + 1
        if need > clicks.size:
            clicks = np.pad(clicks, (0, need - clicks.size))
            shown = np.pad(shown, (0, need - shown.size))
        score = (clicks[ids] + 1.0) / (shown[ids] + 10.0)
        slates = _top_k(_explore(score, rng, epsilon, k), k)
        ticks = world.tick + np.arange(slates.shape[0])
        out = world.serve(slates, with_truth=False)
        items = out["served_item_ids"]
        np.add.at(shown, items.ravel(), 1)
        np.add.at(clicks, items.ravel(), out["clicks"].ravel())
        parts.append(pd.DataFrame({
            "user": np.repeat(obs["user_id"], k),
            "item": items.ravel(),
            "click": out["clicks"].ravel().astype(np.int8),
            "timestamp": np.repeat(ticks, k),
        }))
    return pd.concat(parts, ignore_index=True)
