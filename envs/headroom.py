"""Adaptation headroom: what a ranker loses by not updating, measured on the world's truth.

For every request the world knows two slates: the greedy reference on the *current* truth
(what ``oracle`` serves) and the greedy slate on the truth *frozen at the episode start* (what
``stale-oracle`` serves). Their difference in true expected reward, on the very same request,
is the headroom of that request; averaged per window it says how much adapting could gain, and
when. Both slates are judged on one stream (the oracle's) so the estimate is paired and
needs no second run; the stale-oracle agent itself measures the same thing through the runner.
"""

from __future__ import annotations

import numpy as np

from .scenarios import make_config
from .vector_env import VectorRerankEnv


def measure_headroom(scenario: str = "stationary", seed: int = 0, requests: int = 40_000,
                     batch: int = 500, window: int = 5_000, **world_overrides):
    """Per-window oracle reward, stale-oracle reward and headroom (a pandas DataFrame).

    Columns: ``window``, ``tick_start``, ``tick_end``, ``oracle``, ``stale``, ``headroom``
    (oracle minus stale, per request), ``after_event`` (the window starts at or after the
    first discrete drift event, or the scenario drifts continuously).
    """
    import pandas as pd

    if requests < batch or window < batch:
        raise ValueError(f"need requests >= batch and window >= batch, got {requests=}, "
                         f"{window=}, {batch=}")
    config = make_config(scenario, max_steps=requests // batch + 1, **world_overrides)
    env = VectorRerankEnv(batch, config)
    env.reset(seed=seed)
    world = env.world
    schedule = env.drift_schedule
    discrete = schedule[schedule.onset > 0]
    first = int(discrete.onset.min()) if len(discrete) else (0 if len(schedule) else None)
    rows, acc = [], None
    for step in range(requests // batch):
        if acc is None:
            acc = {"tick_start": world.tick, "oracle": 0.0, "stale": 0.0, "n": 0}
        stale = world.expected_reward(world.frozen_reference_slates())
        best = world.reference_slates()
        _, _, _, _, info = env.step(best)
        acc["oracle"] += float(np.sum(info["truth"]["reference_reward"], dtype=np.float64))
        acc["stale"] += float(np.sum(stale, dtype=np.float64))
        acc["n"] += batch
        if acc["n"] >= window or step + 1 == requests // batch:
            n = acc["n"]
            rows.append({"window": len(rows), "tick_start": acc["tick_start"],
                         "tick_end": acc["tick_start"] + n, "oracle": acc["oracle"] / n,
                         "stale": acc["stale"] / n,
                         "headroom": (acc["oracle"] - acc["stale"]) / n,
                         "after_event": first is not None and acc["tick_start"] >= first})
            acc = None
    return pd.DataFrame(rows)


def headroom_table(scenarios=None, seeds=(0, 1, 2), requests: int = 60_000, batch: int = 1000,
                   window: int = 5_000, **world_overrides):
    """Per scenario: mean headroom per request after the first drift event, with a 95%
    interval over ``seeds`` (t-interval of the per-seed means), and the oracle's reward."""
    import pandas as pd

    from .scenarios import scenario_names

    rows = []
    for name in scenarios or scenario_names():
        per_seed, oracle = [], []
        for seed in seeds:
            df = measure_headroom(name, seed=seed, requests=requests, batch=batch,
                                  window=window, **world_overrides)
            after = df[df.after_event] if df.after_event.any() else df
            per_seed.append(after.headroom.mean())
            oracle.append(after.oracle.mean())
        h = np.asarray(per_seed)
        half = _t95(len(h)) * h.std(ddof=1) / np.sqrt(len(h)) if len(h) > 1 else float("nan")
        rows.append({"scenario": name, "headroom": h.mean(), "ci95_low": h.mean() - half,
                     "ci95_high": h.mean() + half, "oracle": float(np.mean(oracle)),
                     "share_of_oracle": h.mean() / float(np.mean(oracle))})
    return pd.DataFrame(rows)


def _t95(n: int) -> float:
    """Two-sided 95% Student-t quantile for n - 1 degrees of freedom (small n)."""
    table = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306,
             10: 2.262}
    return table.get(n, 1.96)


if __name__ == "__main__":  # python -m driftrank.envs.headroom: the README's headroom column
    print(headroom_table().to_string(index=False, float_format=lambda x: f"{x:.3f}"))
