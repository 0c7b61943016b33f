"""The simulator's trajectories for fixed seeds are the ones the committed study was run on.

Speed work on ``envs/`` (compiled kernels, fused numpy calls) must not change a number: these
fingerprints were recorded from the code before it (commit 44ae52d). Integer outputs
(candidate ids, clicks, served items, users) are hashed exactly; float outputs are compared as
sums within a tight relative tolerance (the last bit of a float may differ on another CPU's
numpy, a click essentially never does in so few steps). ``tests/env_golden.py`` compares whole
trajectories, every field, bit for bit; run it after changing the world.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from driftrank.envs import RerankEnv, VectorRerankEnv

SMALL = dict(n_users=400, n_items=300)
CASES = {
    "single-mixed": (RerankEnv, "mixed", dict(abrupt_times=(20,), recall_shift_times=(30,),
                                              churn_interval=25), 0, 60),
    "vector-cold-churn": (VectorRerankEnv, "cold-churn", dict(churn_interval=64), 16, 25),
    "vector-delayed": (VectorRerankEnv, "delayed-feedback", dict(click_delay=40,
                                                                 abrupt_times=(200,)), 16, 25),
    "vector-quality": (VectorRerankEnv, "quality-drift", dict(quality_shock_times=(150,)),
                       16, 25),
}


def fingerprint(env_cls, scenario: str, overrides: dict, batch: int, steps: int) -> dict:
    env = (env_cls(scenario, **SMALL, **overrides) if batch == 0
           else env_cls(batch, scenario, **SMALL, **overrides))
    rng = np.random.default_rng(5)
    obs, _ = env.reset(seed=9)
    ints, floats = hashlib.sha256(), np.zeros(4)
    k, n = env.config.slate_size, env.config.n_candidates
    for _ in range(steps):
        shape = (k,) if batch == 0 else (batch, k)
        obs, reward, _, _, info = env.step(rng.integers(0, n, size=shape))
        truth = info["truth"]
        for a in (obs["candidate_ids"], obs["user_id"], info["served_item_ids"],
                  info["click_reports"].item_id, info["conversions"].item_id,
                  truth["reference_slate"]):
            ints.update(np.ascontiguousarray(a, np.int64).tobytes())
        floats += [np.sum(reward), np.sum(obs["user"], dtype=np.float64),
                   np.sum(obs["candidates"], dtype=np.float64),
                   np.sum(truth["reference_reward"])]
    return {"ints": ints.hexdigest()[:16], "floats": floats.tolist()}


EXPECTED = {  # recorded at commit 44ae52d (numpy 2.4.6, AMD EPYC)
    "single-mixed": {"ints": "71c41e609f78b763",
                     "floats": [42.0, 410.7269978139084, 7006.157893115989, 158.29899537563324]},
    "vector-cold-churn": {"ints": "70e4bcddd29864e2",
                          "floats": [448.0, 841.6823724530113, 39716.888460256174,
                                     1628.5626640319824]},
    "vector-delayed": {"ints": "c6a701f62a6e82ec",
                       "floats": [302.0, 693.9904212462498, 35581.72350993269,
                                  1333.7029037475586]},
    "vector-quality": {"ints": "9f05fb7b12d57069",
                       "floats": [365.0, 621.8468747614024, 36245.95452184341,
                                  1555.9864768981934]},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_trajectory_matches_the_recorded_one(name):
    got = fingerprint(*CASES[name])
    want = EXPECTED[name]
    assert got["ints"] == want["ints"], f"{name}: ids, clicks or slates changed"
    np.testing.assert_allclose(got["floats"], want["floats"], rtol=1e-6, err_msg=name)
