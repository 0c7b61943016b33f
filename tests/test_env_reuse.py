"""What a step hands out stays as it was: later steps never write into it.

The world reuses its per-step temporaries (``world.WorkArrays``); observations, info arrays and
the lazily computed truth must not be among them. So the arrays of one step are compared after
later steps with copies taken at once, and a truth read late with one read at once.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from driftrank.envs import RerankEnv, VectorRerankEnv
from driftrank.envs.types import Conversions

SMALL = dict(n_users=300, n_items=400, n_candidates=30)


def _snapshot(value):
    if isinstance(value, Conversions):
        return {k: v.copy() for k, v in value.as_dict().items()}
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in dict(value).items()}
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def _assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


def _steps(env, batch, steps, seed):
    rng = np.random.default_rng(seed)
    k, n = env.config.slate_size, env.config.n_candidates
    shape = (k,) if batch == 0 else (batch, k)
    for _ in range(steps):
        yield env.step(rng.integers(0, n, size=shape))


@pytest.mark.parametrize("batch", [0, 4])
def test_outputs_are_not_overwritten_by_later_steps(batch):
    make = (lambda: RerankEnv("mixed", **SMALL)) if batch == 0 else (
        lambda: VectorRerankEnv(batch, "mixed", **SMALL))
    eager, late = make(), make()
    eager.reset(seed=4)
    late.reset(seed=4)
    kept, copies = [], []
    for (obs, reward, _, _, info), (obs2, reward2, _, _, info2) in zip(
            _steps(eager, batch, 40, 1), _steps(late, batch, 40, 1), strict=True):
        _snapshot(info["truth"])  # read now: the eager run's truth
        copies.append(_snapshot((obs, reward, info)))
        kept.append((obs2, reward2, info2))  # the late run's truth is read only below
    clicked = 0
    for (obs2, reward2, info2), want in zip(kept, copies, strict=True):
        got = _snapshot((obs2, reward2, info2))  # truth computed now, 40 steps late
        _assert_same(dict(enumerate(got)), dict(enumerate(want)))
        clicked += int(np.sum(info2["clicks"]))
    assert clicked > 0
