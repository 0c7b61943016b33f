"""Drift is real, labelled, and the same for every agent on the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import VectorRerankEnv, make_config
from driftrank.envs.world import World

SMALL = dict(n_users=500, n_items=400, warmup_ticks=0)


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
    assert [(step, [(e["tick"], e["kind"]) for e in events]) for step, events in reported] \
        == [(9, [(tick, "abrupt")])]
    label = reported[0][1][0]
    assert label["share"] == 0.8 and label["width"] == 0.0
    assert label["mechanism"] == "user taste + topic popularity"


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
    seen = world.user_last_seen >= 0  # visited in this episode
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
    assert new.sum() == 80
    # churned-in items start from fresh counters: the second batch of 40 arrived 100 ticks
    # before the end, so each holds at most the impressions of those last requests
    newest = world.item_id >= 440
    old = ~new
    assert world.items.impressions[newest].mean() < 0.2 * world.items.impressions[old].mean()
    assert world.items.born[newest].min() == 1000


def test_abrupt_shift_reshuffles_topic_popularity():
    world = World(make_config("abrupt-shift", abrupt_times=(200,), abrupt_user_share=0.0,
                              **SMALL), 100, seed=0)
    before = world.drift.topic_pop.copy()
    for _ in range(3):
        world.serve(world.reference_slates())
    after = world.drift.topic_pop
    assert not np.array_equal(after, before)
    np.testing.assert_allclose(np.sort(after), np.sort(before))  # a permutation of them


def test_recall_shift_bias_steers_the_candidates():
    """After a recall shift the recalled topics follow the recall stage's new topic bias."""
    config = make_config("stationary", recall_shift_times=(0,), recall_shift_share=0.6,
                         recall_shift_topic_bias=3.0, **SMALL)
    world = World(config, 2000, seed=0)
    bias = world.drift.recall_topic_bias
    share = np.bincount(world._req_topics.reshape(-1), minlength=config.n_topics)
    share = share / share.sum()
    catalog = np.bincount(world.items.topic, minlength=config.n_topics) / config.n_items
    lift = share / catalog
    assert np.corrcoef(bias, lift)[0, 1] > 0.6


def test_recall_shift_changes_candidate_mix():
    world = World(make_config("stationary", recall_shift_times=(200,), **SMALL), 100, seed=0)
    n_before = world.drift.n_relevance
    for _ in range(3):
        world.serve(world.reference_slates())
    assert world.drift.n_relevance < n_before
    assert np.abs(world.drift.recall_topic_bias).max() > 0


@pytest.mark.parametrize("scenario", ["abrupt-shift", "churn", "periodic", "taste-shift",
                                      "quality-drift", "delayed-feedback"])
def test_two_agents_on_one_seed_meet_the_same_requests(scenario):
    """Common random numbers: without consumption feedback, the served slates do not change
    which users arrive, which candidates they get, or when drift fires."""
    kwargs = dict(abrupt_times=(300,), **SMALL) if "shift" in scenario else SMALL
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


def _clicks_on_one_topic(config, steps: int = 20):
    """Serve every request the same slate for ``steps`` steps; return the world, the user slots
    that clicked, and the topic-0 logits (true attraction) of users before and after."""
    world = World(config, 100, seed=5)
    users = np.arange(config.n_users)
    topic_items = np.flatnonzero(world.items.topic == 0)[:50]
    cands = np.tile(topic_items, (users.size, 1))
    before = world._truth_for(users, cands, frozen=False).attraction.mean(axis=1)
    taste0 = world.users.taste.copy()
    for _ in range(steps):
        world.serve(world.reference_slates())
    after = world._truth_for(users, cands, frozen=False).attraction.mean(axis=1)
    return world, before, after, taste0


def test_boredom_lowers_the_attraction_of_topics_a_user_clicked():
    config = make_config("stationary", boredom_gain=0.5, boredom_half_life=1e9, **SMALL)
    world, before, after, _ = _clicks_on_one_topic(config)
    clicked0 = world.users.history[:, 0] > 0
    assert clicked0.sum() >= 10
    # bored with topic 0: its items lost attraction for exactly the users who clicked it
    assert np.all(after[clicked0] < before[clicked0])
    np.testing.assert_allclose(after[~clicked0], before[~clicked0], rtol=1e-5)
    assert np.all(world.users.boredom >= 0)


def test_consumption_pulls_taste_toward_clicked_items():
    """Each click moves the user's taste by consumption_rate x (item - taste): exactly."""
    config = make_config("stationary", consumption_rate=0.2, **SMALL)
    world = World(config, 100, seed=5)
    users, cands = world._req_users.copy(), world._req_cands.copy()
    taste0 = world.users.taste.copy()
    slates = world.reference_slates()
    clicks = world.serve(slates)["truth"]["clicks"] > 0
    rows, pos = np.nonzero(clicks)
    assert rows.size > 20
    expected = taste0.copy()
    clicked = np.take_along_axis(cands, slates, axis=1)[rows, pos]
    np.add.at(expected, users[rows], 0.2 * (world.items.v[clicked] - taste0[users[rows]]))
    np.testing.assert_allclose(world.users.taste, expected, atol=1e-5)
    moved = np.linalg.norm(world.users.taste - taste0, axis=1)
    assert moved[np.unique(users[rows])].min() > 0.05
