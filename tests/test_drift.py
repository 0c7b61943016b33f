"""Drift is real, labelled, and the same for every agent on the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import VectorRerankEnv, make_config
from driftrank.envs.world import World

SMALL = dict(n_users=500, n_items=400)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def _reference_overlap_across(scenario: str, event_tick: int, batch: int = 256) -> float:
    """Reference slates for the same users and candidates, before vs after ``event_tick``."""
    world = World(make_config(scenario, abrupt_times=(event_tick,), **SMALL), batch, seed=3)
    users, cands = world._req_users.copy(), world._req_cands.copy()
    before = world.reference_for(users, cands)
    while world.tick <= event_tick:
        world.serve(world.reference_slates())
    return _overlap(before, world.reference_for(users, cands))


def test_abrupt_shift_changes_the_best_slates_and_stationary_does_not():
    shifted = _reference_overlap_across("abrupt-shift", event_tick=1024)
    control = _reference_overlap_across("stationary", event_tick=1024)
    assert shifted < 0.5
    assert control == 1.0


def test_abrupt_event_is_reported_at_the_step_it_fires():
    batch, tick = 16, 160  # fires for the requests of step 10: reported by step 9
    env = VectorRerankEnv(batch, "abrupt-shift", abrupt_times=(tick,), **SMALL)
    env.reset(seed=0)
    action = np.tile(np.arange(10), (batch, 1))
    reported = []
    for step in range(20):
        u_before = env.world.user_u.copy()
        info = env.step(action)[4]
        if info["drift_events"]:
            reported.append((step, info["drift_events"]))
            changed = np.any(env.world.user_u != u_before, axis=1).mean()
            assert changed > 0.6  # most users switched taste at this step
    assert reported == [(9, [{"tick": tick, "kind": "abrupt"}])]


def test_stationary_has_no_events_and_stable_reference_reward():
    env = VectorRerankEnv(256, "stationary", **SMALL)
    _, info = env.reset(seed=1)
    assert info["drift_events"] == []
    rewards = []
    for _ in range(40):
        _, _, _, _, info = env.step(np.tile(np.arange(10), (256, 1)))
        assert info["drift_events"] == []
        rewards.append(info["truth"]["reference_reward"].mean())
    first, second = np.mean(rewards[:20]), np.mean(rewards[20:])
    assert abs(first - second) / first < 0.05


def test_gradual_drift_moves_tastes_and_trends():
    world = World(make_config("gradual", user_drift_timescale=2000.0, **SMALL), 256, seed=2)
    u0, trend0 = world.user_u.copy(), world.drift.trend.copy()
    for _ in range(30):
        world.serve(world.reference_slates())
    moved = np.linalg.norm(world.user_u - u0, axis=1)
    seen = world.user_last_seen >= 0
    assert np.median(moved[seen]) > 0.3
    assert not np.allclose(world.drift.trend, trend0)


def test_periodic_cycle_returns_after_one_period():
    world = World(make_config("periodic", period=1000, **SMALL), 100, seed=0)
    terms = []
    for _ in range(21):
        terms.append(world.drift.topic_term.copy())
        world.serve(world.reference_slates())
    assert np.abs(terms[5] - terms[0]).max() > 0.5  # half a day later: different trends
    np.testing.assert_allclose(terms[10], terms[0], atol=1e-5)  # one day later: back


def test_churn_brings_cold_items_with_new_ids():
    env = VectorRerankEnv(100, "churn", churn_interval=500, churn_fraction=0.1, **SMALL)
    env.reset(seed=0)
    events = []
    for _ in range(12):
        events += env.step(np.tile(np.arange(10), (100, 1)))[4]["drift_events"]
    assert [e["kind"] for e in events] == ["churn"] * 2
    world = env.world
    assert world.item_id.max() == 400 + 2 * 40 - 1
    new = world.item_id >= 400
    assert new.sum() == 80 and np.all(world.item_impressions[new] <= world.item_impressions.max())


def test_recall_shift_changes_candidate_mix():
    world = World(make_config("stationary", recall_shift_times=(200,), **SMALL), 100, seed=0)
    n_before = world.drift.n_relevance
    for _ in range(3):
        world.serve(world.reference_slates())
    assert world.drift.n_relevance < n_before
    assert np.abs(world.drift.recall_topic_bias).max() > 0


@pytest.mark.parametrize("scenario", ["abrupt-shift", "churn", "periodic"])
def test_two_agents_on_one_seed_meet_the_same_requests(scenario):
    """Common random numbers: without consumption feedback, the served slates do not change
    which users arrive, which candidates they get, or when drift fires."""
    kwargs = dict(abrupt_times=(300,), **SMALL) if scenario == "abrupt-shift" else SMALL
    a = VectorRerankEnv(50, scenario, **kwargs)
    b = VectorRerankEnv(50, scenario, **kwargs)
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    rng = np.random.default_rng(0)
    for _ in range(15):
        np.testing.assert_array_equal(oa["user_id"], ob["user_id"])
        np.testing.assert_array_equal(oa["candidate_ids"], ob["candidate_ids"])
        good = a.world.reference_slates()
        bad = np.argsort(rng.random((50, 50)), axis=1)[:, :10]
        oa, _, _, _, ia = a.step(good)
        ob, _, _, _, ib = b.step(bad)
        assert ia["drift_events"] == ib["drift_events"]
