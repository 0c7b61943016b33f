"""``driftrank demo``: a short episode, random vs greedy-on-truth, CTR per scenario.

A first look at the world: how much a perfect re-ranker (the oracle, reading truth) earns over
serving candidates in random order, and how much of that edge an abrupt shift leaves intact.
"""

from __future__ import annotations

import numpy as np

from driftrank.envs import VectorRerankEnv


def run_demo(steps: int = 200, seed: int = 0, batch: int = 256,
             scenarios=("stationary", "abrupt-shift", "gradual")) -> int:
    print(f"driftrank demo: {steps} steps x {batch} requests per scenario, seed {seed}\n")
    print(f"{'scenario':<14} {'policy':<8} {'CTR':>7} {'reward/req':>11} {'regret/req':>11}")
    for scenario in scenarios:
        for policy in ("random", "oracle"):
            env = VectorRerankEnv(batch, scenario, abrupt_times=(steps * batch // 2,)
                                  if scenario == "abrupt-shift" else ())
            env.reset(seed=seed)
            rng = np.random.default_rng(seed)
            clicks = reward = regret = 0.0
            for _ in range(steps):
                if policy == "oracle":
                    slates = env.world.reference_slates()
                else:
                    slates = np.argsort(rng.random((batch, env.config.n_candidates)), 1)[:, :10]
                _, r, _, _, info = env.step(slates)
                clicks += info["clicks"].sum()
                reward += r.sum()
                regret += (info["truth"]["reference_reward"]
                           - info["truth"]["expected_reward"]).sum()
            n = steps * batch
            print(f"{scenario:<14} {policy:<8} {clicks / (n * 10):>7.3f} {reward / n:>11.3f} "
                  f"{regret / n:>11.3f}")
    return 0
