"""``driftrank bench env``: requests per second of the simulator, one thread.

The first three rows are the targets of the speed issue (#11): ``RerankEnv`` at N=50, K=10
with truth not read (>= 15k steps/s), ``VectorRerankEnv`` at N=100, K=10, B=1024 with truth
read (>= 100k requests/s), and the same at 1M users / 100k items (>= 80% of the 10k / 2k
figure, world built in a few seconds). Then the rest of the grid: ``RerankEnv`` stepped with
``action_space.sample()`` (what a generic RL loop does), with and without reading
``info["truth"]`` (truth and the reference slate are computed only when read), and
``VectorRerankEnv`` at several batch sizes with a fixed valid slate and truth read (the runner
always reads it), for N=50 and N=100 candidates. Each row carries the machine's 1-minute load
average when it was measured (figures from a shared machine are not comparable). The scenario
is ``gradual`` unless told otherwise (the issue's and the README's figures are gradual's).

The first figure of a process includes compiling the kernels of ``envs/kernels.py`` unless
numba's cache holds them; every figure here is taken after a warm-up step.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..envs import RerankEnv, VectorRerankEnv

SCALE = ((10_000, 2_000), (1_000_000, 100_000))


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
         items: int = 2_000, build_s: float | None = None, target: str = "") -> dict:
    return {"target": target, "env": env, "N": n, "K": 10, "B": b, "truth": truth,
            "users": users, "items": items,
            "build_s": "-" if build_s is None else f"{build_s:.1f}",
            "requests_per_s": float(rate), "load_1min": f"{os.getloadavg()[0]:.1f}"}


def _single(scenario: str, n: int, seed: int, read_truth: bool, min_seconds: float) -> float:
    env = RerankEnv(scenario, n_candidates=n, max_steps=10**9)
    env.reset(seed=seed)
    env.action_space.seed(seed)

    def step():
        info = env.step(env.action_space.sample())[4]
        if read_truth:
            info["truth"]["reference_reward"]

    return _rate(step, 1, min_seconds)


def _vector(scenario: str, n: int, b: int, seed: int, min_seconds: float,
            users: int = 10_000, items: int = 2_000) -> tuple[float, float]:
    """(requests/s, seconds to build the world) with a fixed valid slate and truth read."""
    start = time.perf_counter()
    venv = VectorRerankEnv(b, scenario, n_candidates=n, max_steps=10**9, n_users=users,
                           n_items=items)
    venv.reset(seed=seed)
    build = time.perf_counter() - start
    action = np.tile(np.arange(10), (b, 1))

    def step():
        venv.step(action)[4]["truth"]["reference_reward"]

    return _rate(step, b, min_seconds), build


def bench_env(scenario: str = "gradual", batches=(1, 64, 1024), candidates=(50, 100),
              min_seconds: float = 1.0, seed: int = 0, scale=SCALE) -> list[dict]:
    rows = [_row("RerankEnv", 50, 1, _single(scenario, 50, seed, False, min_seconds),
                 "not read", target=">= 15,000")]
    rates = {}
    for users, items in scale:
        rate, build = _vector(scenario, 100, 1024, seed, min_seconds, users, items)
        rates[users, items] = rate
        first = rates[scale[0]]
        target = (">= 100,000" if (users, items) == scale[0]
                  else f">= 80% of first: {rate / first:.0%}")
        rows.append(_row("VectorRerankEnv", 100, 1024, rate, "read", users, items, build,
                         target))
    for n in candidates:
        for read in (False, True):
            rows.append(_row("RerankEnv", n, 1, _single(scenario, n, seed, read, min_seconds),
                             "read" if read else "not read"))
        for b in batches:
            rows.append(_row("VectorRerankEnv", n, b, _vector(scenario, n, b, seed,
                                                              min_seconds)[0], "read"))
    return rows
