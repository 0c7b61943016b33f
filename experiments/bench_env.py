"""``driftrank bench env``: requests per second of the simulator, one thread.

Measures ``RerankEnv`` stepped with ``action_space.sample()`` (what a generic RL loop does) and
``VectorRerankEnv`` at several batch sizes with a fixed valid slate, for N=50 and N=100
candidates (K=10), truth (reference slate) included, since the runner always asks for it.
"""

from __future__ import annotations

import time

import numpy as np

from ..envs import RerankEnv, VectorRerankEnv


def _rate(step, n_requests_per_call: int, min_seconds: float) -> float:
    step()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 3:
            return calls * n_requests_per_call / elapsed


def bench_env(scenario: str = "abrupt-shift", batches=(1, 64, 1024), candidates=(50, 100),
              min_seconds: float = 1.0, seed: int = 0) -> list[dict]:
    rows = []
    for n in candidates:
        env = RerankEnv(scenario, n_candidates=n, max_steps=10**9)
        env.reset(seed=seed)
        env.action_space.seed(seed)

        def single(env=env):
            env.step(env.action_space.sample())

        rows.append({"env": "RerankEnv", "N": n, "K": 10, "B": 1,
                     "requests_per_s": _rate(single, 1, min_seconds)})
        for b in batches:
            venv = VectorRerankEnv(b, scenario, n_candidates=n, max_steps=10**9)
            venv.reset(seed=seed)
            action = np.tile(np.arange(10), (b, 1))

            def vector(venv=venv, action=action):
                venv.step(action)

            rows.append({"env": "VectorRerankEnv", "N": n, "K": 10, "B": b,
                         "requests_per_s": _rate(vector, b, min_seconds)})
    return rows
