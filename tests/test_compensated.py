"""CompensatedEvaluator: the error memory repairs a stale evaluator after an abrupt shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from driftrank.adapt.compensated import CompensatedEvaluator
from driftrank.adapt.compensation_study import compare_by_slot
from driftrank.adapt.error_memory import ErrorMemory
from driftrank.agents.pretrained import PretrainConfig, model_inputs, pretrain
from driftrank.envs import VectorRerankEnv

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


def _post_shift_slots(env, generator, seed):
    env.reset(seed=seed)
    _served(env, generator, 11)  # up to and across the shift at tick 2000
    stream = _served(env, generator, 30)
    return [stream[i:i + 5] for i in range(0, 30, 5)]


def test_memory_improves_log_loss_and_auc_slot_by_slot_after_an_abrupt_shift(models):
    # ReLoop2's protocol: each post-shift slot is scored by a memory holding the slots before
    # it. Keys carry item identity; without it the same memory gains (almost) no AUC.
    env, pre = models
    slots = _post_shift_slots(env, pre.generator, 4)
    rows = compare_by_slot(pre.evaluator, slots, n_bits=10, n_arrays=32, lam=0.5, seed=0)[1:]
    d_ll = np.array([r["base_logloss"] - r["comp_logloss"] for r in rows])
    d_auc = np.array([r["comp_auc"] - r["base_auc"] for r in rows])
    # measured on this world: about +0.018 log-loss and +0.03 AUC per slot
    assert (d_ll > 0).all() and d_ll.mean() > 0.005, d_ll
    assert (d_auc > 0).all() and d_auc.mean() > 0.01, d_auc
    no_id = compare_by_slot(pre.evaluator, slots, n_bits=10, n_arrays=32, lam=0.5, seed=0,
                            id_weight=0.0)[1:]
    d_auc_no_id = np.array([r["comp_auc"] - r["base_auc"] for r in no_id])
    assert d_auc.mean() > d_auc_no_id.mean() + 0.005, (d_auc.mean(), d_auc_no_id.mean())


def test_set_evaluator_resets_the_memory_and_the_first_slot_is_uncorrected(models):
    env, pre = models
    slots = _post_shift_slots(env, pre.generator, 5)[:2]
    rows = compare_by_slot(pre.evaluator, slots, lam=0.5)
    assert rows[0]["written_before"] == 0 and rows[0]["comp_logloss"] == rows[0]["base_logloss"]
    comp = CompensatedEvaluator(pre.evaluator, lam=0.5)
    for user, items, ids, clicks in slots[0]:
        comp.observe(user, items, ids, clicks)
    assert comp.memory.n_written > 0
    comp.set_evaluator(pre.evaluator)
    assert comp.memory.n_written == 0
    user, items, ids, _ = slots[1][0]
    c, b = comp.predict(user, items, ids)
    np.testing.assert_array_equal(c, b)


def test_empty_memory_changes_nothing_and_lambda_zero_is_bare(models):
    env, pre = models
    env.reset(seed=1)
    user, items, ids, clicks = _served(env, pre.generator, 1)[0]
    comp = CompensatedEvaluator(pre.evaluator, lam=0.5)
    c, b = comp.predict(user, items, ids)
    np.testing.assert_array_equal(c, b)
    comp.observe(user, items, ids, clicks)
    zero = CompensatedEvaluator(pre.evaluator, id_weight=0.0,
                                memory=ErrorMemory(pre.evaluator.config.hidden, lam=0.0))
    zero.observe(user, items, ids, clicks)
    c0, b0 = zero.predict(user, items, ids)
    np.testing.assert_array_equal(c0, b0)
    c1, b1 = comp.predict(user, items, ids)
    assert not np.array_equal(c1, b1)  # after writes, the same impressions are corrected
    assert torch.allclose(comp.score(user, items, ids), torch.from_numpy(c1.sum(1)))
    np.testing.assert_allclose(comp(user, items, ids).numpy(), c1, rtol=1e-6)  # per position


def test_key_dimension_mismatch_is_a_clear_error(models):
    _, pre = models
    with pytest.raises(ValueError, match="key_dim"):
        CompensatedEvaluator(pre.evaluator, memory=ErrorMemory(7))


def test_compensation_by_slot_on_a_scenario(models):
    from driftrank.experiments.compensation import compensation_by_slot

    env, pre = models
    df = compensation_by_slot("abrupt-shift", pre.evaluator, pre.generator, world=WORLD, seed=4,
                              batch=200, warmup_batches=11, n_slots=3, batches_per_slot=5,
                              n_bits=10, lam=0.5)
    assert list(df["slot"]) == [0, 1, 2] and (df["n"] > 0).all()
    assert df.loc[0, "comp_logloss"] == df.loc[0, "base_logloss"]  # empty memory: no change
    later = df.iloc[1:]
    assert (later["comp_logloss"] < later["base_logloss"]).all()
    assert (later["comp_auc"] > later["base_auc"]).all()
    with pytest.raises(ValueError, match="n_slots"):
        compensation_by_slot("abrupt-shift", pre.evaluator, pre.generator, n_slots=0)
