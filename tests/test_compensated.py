"""CompensatedEvaluator: the error memory repairs a stale evaluator after an abrupt shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from driftrank.adapt.compensated import CompensatedEvaluator
from driftrank.adapt.error_memory import ErrorMemory
from driftrank.agents.pretrained import PretrainConfig, model_inputs, pretrain
from driftrank.envs import VectorRerankEnv
from driftrank.evaluator import log_loss

# ids in the evaluator on purpose: its hidden keys then carry item identity, which is what the
# memory's buckets need to hold item-level corrections (measured: without ids the memory gives
# no gain on this world, see the README's honest notes)
TINY = PretrainConfig(n_requests=3000, evaluator_epochs=2, imitation_epochs=1, pg_steps=20,
                      eval_requests=200, evaluator_ids=True, pg_lr=1e-3, pg_imitation_coef=0.0)
WORLD = dict(n_users=300, n_items=200, abrupt_times=(2000,))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    env = VectorRerankEnv(200, "abrupt-shift", **WORLD)
    return env, pretrain(env.config, config=TINY, cache_dir=tmp_path_factory.mktemp("cache"))


def _served(env, generator, steps):
    """Observation inputs, slates and clicks of ``steps`` batches served greedily."""
    out = []
    for _ in range(steps):
        x = model_inputs(env.world.observation())
        with torch.inference_mode():
            slates = generator.greedy(x["user"], x["candidates"], x["candidate_ids"]).numpy()
        _, _, _, _, info = env.step(slates)
        rows = np.arange(len(slates))[:, None]
        out.append((x["user"], x["candidates"][rows, slates], x["candidate_ids"][rows, slates],
                    info["clicks"]))
    return out


def test_memory_lowers_log_loss_after_an_abrupt_shift(models):
    env, pre = models
    env.reset(seed=4)
    comp = CompensatedEvaluator(pre.evaluator, n_bits=8, n_arrays=32, lam=0.3, seed=0)
    _served(env, pre.generator, 11)  # up to and across the shift at tick 2000
    for user, items, ids, clicks in _served(env, pre.generator, 30):  # post-shift stream
        comp.observe(user, items, ids, clicks)
    later = _served(env, pre.generator, 10)
    y = np.concatenate([c for *_, c in later]).reshape(-1)
    preds = [comp.predict(u, i, d) for u, i, d, _ in later]
    compensated = np.concatenate([p[0] for p in preds]).reshape(-1)
    bare = np.concatenate([p[1] for p in preds]).reshape(-1)
    # measured: 0.2750 vs 0.2799 (about 2% better); the margin asks for about half of that
    assert log_loss(y, compensated) < log_loss(y, bare) - 0.002


def test_empty_memory_changes_nothing_and_lambda_zero_is_bare(models):
    env, pre = models
    env.reset(seed=1)
    user, items, ids, clicks = _served(env, pre.generator, 1)[0]
    comp = CompensatedEvaluator(pre.evaluator, lam=0.5)
    c, b = comp.predict(user, items, ids)
    np.testing.assert_array_equal(c, b)
    comp.observe(user, items, ids, clicks)
    zero = CompensatedEvaluator(pre.evaluator, memory=ErrorMemory(pre.evaluator.config.hidden,
                                                                   lam=0.0))
    zero.observe(user, items, ids, clicks)
    c0, b0 = zero.predict(user, items, ids)
    np.testing.assert_array_equal(c0, b0)
    c1, b1 = comp.predict(user, items, ids)
    assert not np.array_equal(c1, b1)  # after writes, the same impressions are corrected
    assert torch.allclose(comp.score(user, items, ids), torch.from_numpy(c1.sum(1)))


def test_key_dimension_mismatch_is_a_clear_error(models):
    _, pre = models
    with pytest.raises(ValueError, match="key_dim"):
        CompensatedEvaluator(pre.evaluator, memory=ErrorMemory(7))
