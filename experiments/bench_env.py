"""``driftrank bench env``: requests per second of the simulator, one thread.

Measures ``RerankEnv`` stepped with ``action_space.sample()`` (what a generic RL loop does),
with and without reading ``info["truth"]`` (truth and the reference slate are computed only
when read), ``VectorRerankEnv`` at several batch sizes with a fixed valid slate and truth read
(the runner always reads it), for N=50 and N=100 candidates (K=10), and the scale rows: the
vector env at 10k users / 2k items against 1M users / 100k items, with the time to build the
world (warm-up included).
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


def _row(env: str, n: int, b: int, rate: float, truth: str, users: int = 10_000,
         items: int = 2_000, build_s: float | None = None) -> dict:
    return {"env": env, "N": n, "K": 10, "B": b, "truth": truth, "users": users,
            "items": items, "build_s": "-" if build_s is None else f"{build_s:.1f}",
            "requests_per_s": rate}


def bench_env(scenario: str = "abrupt-shift", batches=(1, 64, 1024), candidates=(50, 100),
              min_seconds: float = 1.0, seed: int = 0,
              scale=((10_000, 2_000), (1_000_000, 100_000))) -> list[dict]:
    rows = []
    for n in candidates:
        env = RerankEnv(scenario, n_candidates=n, max_steps=10**9)
        env.reset(seed=seed)
        env.action_space.seed(seed)

        def single(env=env):
            env.step(env.action_space.sample())

        def single_truth(env=env):
            env.step(env.action_space.sample())[4]["truth"]["reference_reward"]

        rows.append(_row("RerankEnv", n, 1, _rate(single, 1, min_seconds), "not read"))
        rows.append(_row("RerankEnv", n, 1, _rate(single_truth, 1, min_seconds), "read"))
        for b in batches:
            venv = VectorRerankEnv(b, scenario, n_candidates=n, max_steps=10**9)
            venv.reset(seed=seed)
            action = np.tile(np.arange(10), (b, 1))

            def vector(venv=venv, action=action):
                venv.step(action)[4]["truth"]["reference_reward"]

            rows.append(_row("VectorRerankEnv", n, b, _rate(vector, b, min_seconds), "read"))
    for users, items in scale:
        b, n = 1024, 100
        start = time.perf_counter()
        venv = VectorRerankEnv(b, scenario, n_candidates=n, max_steps=10**9, n_users=users,
                               n_items=items)
        venv.reset(seed=seed)
        build = time.perf_counter() - start
        action = np.tile(np.arange(10), (b, 1))

        def scaled(venv=venv, action=action):
            venv.step(action)[4]["truth"]["reference_reward"]

        rows.append(_row("VectorRerankEnv", n, b, _rate(scaled, b, min_seconds), "read",
                         users, items, build))
    return rows
