"""Record a simulator trajectory and compare it with one recorded earlier (not a test module).

Speed work on ``envs/`` must not change a single number of the committed study, so before such
a change record the trajectories of the current code, and after it compare::

    .venv/bin/python tests/env_golden.py record /tmp/golden.pkl
    .venv/bin/python tests/env_golden.py compare /tmp/golden.pkl

The trajectories cover the scenarios whose mechanisms differ (taste shifts, hidden quality
drift and shocks, churn with joining and leaving users, delayed clicks, gradual drift, and
``mixed`` with consumption feedback, boredom, cascades and a recall shift), for ``RerankEnv``
and ``VectorRerankEnv`` (B=64), with actions drawn from a seeded generator (repeated indices
included, so empty slots are exercised), plus the offline logs. Every observation, reward, info
field and truth key (reference slates and frozen references included) is kept. ``compare``
requires integer arrays (ids, clicks, slates) to be identical and floats equal within 1e-12.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np

from driftrank.envs import RerankEnv, VectorRerankEnv
from driftrank.envs.logs import generate_logs
from driftrank.envs.types import Conversions

# event times moved into the recorded window, so the events fire while it is recorded
SINGLE = {
    "taste-shift": dict(abrupt_times=(120,)),
    "quality-drift": dict(quality_shock_times=(120,), stats_refresh=100),
    "cold-churn": dict(churn_interval=100, stats_refresh=50),
    "delayed-feedback": dict(abrupt_times=(100,), click_delay=20),
    "gradual": dict(),
    "mixed": dict(abrupt_times=(150,), recall_shift_times=(200,), churn_interval=150),
    "stationary": dict(user_features="taste", stats_refresh=0),  # the v1 control world
    "periodic": dict(n_topics=150, cascade_stop=0.5, contrast=0.0, recall_pool_factor=1),
}
VECTOR = {
    "taste-shift": dict(abrupt_times=(3_000,)),
    "quality-drift": dict(quality_shock_times=(3_000,)),
    "cold-churn": dict(),
    "delayed-feedback": dict(abrupt_times=(3_000,)),
    "gradual": dict(),
    "mixed": dict(abrupt_times=(2_000,), recall_shift_times=(4_000,)),
}
SMALL = dict(n_users=3_000, n_items=1_500)


def _plain(value):
    """Info values as plain nested containers of arrays (truth read in full)."""
    if isinstance(value, Conversions):
        return {"type": type(value).__name__, **value.as_dict()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(dict(value).items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return np.array(value) if isinstance(value, np.ndarray | np.generic | float | int) else value


def _episode(env, steps: int, seed: int, batch: int) -> list:
    c = env.config
    rng = np.random.default_rng(seed + 1000)
    obs, info = env.reset(seed=seed)
    record = [("reset", _plain(obs), _plain(info))]
    for t in range(steps):
        shape = (c.slate_size,) if batch == 0 else (batch, c.slate_size)
        if t % 3 == 0:  # with repeats: empty slots
            action = rng.integers(0, c.n_candidates, size=shape)
        elif t % 3 == 1:
            action = np.argsort(rng.random((*shape[:-1], c.n_candidates)), axis=-1)[
                ..., :c.slate_size]
        else:  # the reference (an oracle's slates)
            ref = env.unwrapped.world.reference_slates()
            action = ref[0] if batch == 0 else ref
        frozen = env.unwrapped.world.frozen_reference_slates()
        logit = env.unwrapped.world.true_attraction().copy()
        obs, reward, term, trunc, info = env.step(action)
        record.append(("step", _plain(obs), np.array(reward), np.array(term), np.array(trunc),
                       _plain(info), frozen, logit))
    return record


def _logs() -> dict:
    out = {}
    for scenario in ("taste-shift", "cold-churn", "delayed-feedback"):
        logs = generate_logs(scenario, n_requests=600, seed=3, batch_size=200, **SMALL)
        out[scenario] = _plain(logs.requests)
        out[scenario]["shown"] = {k: logs.shown[k].to_numpy() for k in logs.shown.columns}
    return out


def record_all() -> dict:
    data = {}
    for scenario, over in SINGLE.items():
        env = RerankEnv(scenario, n_candidates=50, **SMALL, **over)
        data[("single", scenario)] = _episode(env, 300, 11, 0)
    for scenario, over in VECTOR.items():
        env = VectorRerankEnv(64, scenario, n_candidates=100, **SMALL, **over)
        data[("vector", scenario)] = _episode(env, 100, 12, 64)
    env = VectorRerankEnv(1024, "gradual", n_candidates=100, n_users=1_000_000,
                          n_items=100_000)  # the scale row of the benchmark (int64 layout)
    data[("vector", "gradual", "1M/100k")] = _episode(env, 4, 13, 1024)
    data[("logs",)] = _logs()
    return data


def _compare(a, b, where: str, problems: list[str]) -> None:
    if len(problems) > 20:
        return
    if isinstance(a, dict):
        if set(a) != set(b):
            problems.append(f"{where}: keys {sorted(a)} != {sorted(b)}")
            return
        for k in a:
            _compare(a[k], b[k], f"{where}.{k}", problems)
    elif isinstance(a, list | tuple):
        if len(a) != len(b):
            problems.append(f"{where}: length {len(a)} != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _compare(x, y, f"{where}[{i}]", problems)
    elif isinstance(a, np.ndarray):
        b = np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{where}: {a.shape} {a.dtype} != {b.shape} {b.dtype}")
        elif a.dtype == object:
            for i, (x, y) in enumerate(zip(a.reshape(-1), b.reshape(-1), strict=True)):
                _compare(np.asarray(x), np.asarray(y), f"{where}[{i}]", problems)
        elif a.dtype.kind in "fc":
            if not np.allclose(a, b, rtol=0, atol=1e-12, equal_nan=True):
                problems.append(f"{where}: max |diff| {np.nanmax(np.abs(a - b)):.3g}")
        elif not np.array_equal(a, b):
            problems.append(f"{where}: differs")
    elif a != b:
        problems.append(f"{where}: {a!r} != {b!r}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    data = record_all()
    if argv[0] == "record":
        with open(argv[1], "wb") as f:
            pickle.dump(data, f)
        print(f"recorded {len(data)} trajectories to {argv[1]}")
        return 0
    with open(argv[1], "rb") as f:
        golden = pickle.load(f)
    problems: list[str] = []
    _compare(golden, data, "golden", problems)
    print("\n".join(problems) if problems else f"identical: {len(data)} trajectories")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
