"""World v2: lagged behaviour features, hidden drift, lagged statistics, delayed labels,
returns that depend on the slates, labelled drift, and the headroom it creates."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import VectorRerankEnv, make_config
from driftrank.envs.conversions import conversion_delays
from driftrank.envs.headroom import measure_headroom
from driftrank.envs.world import World

SMALL = dict(n_users=300, n_items=300)


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1) + 1e-12)


def _profile_vs_tastes(user_features: str):
    """Correlation of switched users' first feature block with their old and new taste,
    right after a shift and after the users made some visits under the new taste."""
    config = make_config("taste-shift", abrupt_times=(6000,), abrupt_user_share=1.0,
                         user_features=user_features, n_users=100, n_items=400,
                         profile_half_lives=(300.0, 3000.0, float("inf")))
    world = World(config, 100, seed=1)
    o = config.obs_dim
    while world.tick < 6000:
        world.serve(world.reference_slates())
    old = world.users.taste0 @ world.projection.T
    new = world.users.taste @ world.projection.T
    ids = np.arange(config.n_users)

    def block():
        return world.users.features(ids, world.users.taste[ids] + world.drift.offset,
                                    world.projection)[:, :o]

    right_after = (_corr_rows(block(), old).mean(), _corr_rows(block(), new).mean())
    for _ in range(40):  # ~40 visits per user
        world.serve(world.reference_slates())
    later = (_corr_rows(block(), old).mean(), _corr_rows(block(), new).mean())
    return right_after, later


def test_history_profiles_lag_a_taste_shift_and_then_catch_up():
    (old_now, new_now), (old_later, new_later) = _profile_vs_tastes("history")
    assert old_now > new_now + 0.3  # still the old taste right after the shift
    assert new_later - old_later > (new_now - old_now) + 0.3  # the gap closes with visits
    assert new_later > old_later


def test_taste_features_reveal_a_shift_at_once():
    (old_now, new_now), _ = _profile_vs_tastes("taste")
    assert new_now > 0.8 and abs(old_now) < 0.3


def test_cold_users_have_empty_profiles():
    world = World(make_config("stationary", warmup_ticks=0, **SMALL), 50, seed=0)
    obs = world.observation()
    fresh = world.users.visits[world._req_users] == 0
    assert fresh.all()
    assert np.all(obs["user"][:, :-1] == 0)  # no profile, no histogram, no counts yet
    world.serve(world.reference_slates())
    assert world.users.profile_weight.sum() > 0
    warm = World(make_config("stationary", **SMALL), 50, seed=0)  # an episode starts warm
    assert (warm.observation()["user"][:, :-3] != 0).any(axis=1).mean() > 0.9
    assert warm.observation()["candidates"][:, :, -3].max() > 0  # published statistics


def test_good_slates_bring_users_back_sooner_than_random_slates():
    """In one world, users in even slots get the reference slate and the others a random one;
    requests per tick are fixed, so satisfaction moves *who* arrives: the well-served return
    sooner."""
    config = make_config("stationary", return_sensitivity=3.0, n_users=300, n_items=300)
    world = World(config, 100, seed=3)
    rng = np.random.default_rng(0)
    gaps = {True: [], False: []}
    for step in range(150):
        users = world._req_users
        good = users % 2 == 0
        random = np.argsort(rng.random((100, 50)), axis=1)[:, :10]
        slates = np.where(good[:, None], world.reference_slates(), random)
        out = world.serve(slates)
        if step >= 50:
            seen = out["return_gap"] > 0
            for flag in (True, False):
                gaps[flag].append(out["return_gap"][seen & (good == flag)])
    good_gap, bad_gap = np.concatenate(gaps[True]), np.concatenate(gaps[False])
    assert np.median(good_gap) < 0.7 * np.median(bad_gap)
    sat = world.users.satisfaction
    assert sat[0::2].mean() > sat[1::2].mean()


def test_leaving_and_joining_keep_the_arrays_consistent():
    config = make_config("cold-churn", leave_after=1, join_rate=0.2, **SMALL)
    env = VectorRerankEnv(50, config)
    obs, _ = env.reset(seed=2)
    world = env.world
    active0 = world.users.n_active
    seen_ids, joined = set(), 0
    bad = np.tile(np.arange(10), (50, 1))
    for _ in range(60):
        assert world.users.active[world._req_users].all()  # only active users arrive
        obs, _, _, _, info = env.step(bad)
        joined += info["joined"]
        seen_ids |= set(obs["user_id"].tolist())
        pop = world.users
        assert info["active_users"] == pop.n_active == int(pop.active.sum())
        assert len(pop.free) == config.n_users - pop.n_active
        assert len(set(pop.free)) == len(pop.free) and not pop.active[list(pop.free)].any()
        assert obs in env.observation_space
    assert joined > 0 and world.users.next_id == config.n_users + joined
    assert max(seen_ids) >= config.n_users  # joiners carry new ids
    assert world.users.n_active != active0 or joined > 0


def test_item_statistics_lag_until_the_batch_job_publishes():
    config = make_config("stationary", stats_refresh=1000, **SMALL)
    world = World(config, 100, seed=0)
    s = config.n_topics + config.obs_dim
    table = []
    for _ in range(15):
        table.append(world.items.features(np.arange(config.n_items)[None, :], world.tick)[0])
        world.serve(world.reference_slates())
    # published impressions stay frozen within a refresh period and jump at each boundary
    assert np.array_equal(table[1][:, s], table[9][:, s])
    assert np.array_equal(table[0][:, s], table[9][:, s])  # the warm-up's publication
    assert (table[10][:, s] > table[9][:, s]).sum() > 100  # the job ran at tick 1000
    assert np.array_equal(table[10][:, s], table[14][:, s])
    live = make_config("stationary", stats_refresh=0, warmup_ticks=0, **SMALL)
    w2 = World(live, 100, seed=0)
    w2.serve(w2.reference_slates())
    assert w2.items.features(np.arange(300)[None, :], w2.tick)[0][:, s].max() > 0


def test_quality_drift_is_hidden_from_the_features():
    config = make_config("quality-drift", quality_drift_timescale=500.0,
                         quality_shock_times=(1000,), **SMALL)
    world = World(config, 100, seed=0)
    items = np.arange(config.n_items)
    q0 = world.items.quality_now(items, world.drift.quality_factors)
    static0 = world.items.static.copy()
    for _ in range(20):
        world.serve(world.reference_slates())
    q1 = world.items.quality_now(items, world.drift.quality_factors)
    assert np.corrcoef(q0, q1)[0, 1] < 0.9  # quality moved ...
    assert np.abs(q1 - q0).mean() > 0.3
    np.testing.assert_array_equal(world.items.static, static0)  # ... features did not
    np.testing.assert_array_equal(world.items.quality0, q0)  # the frozen truth stays


def test_delayed_clicks_arrive_once_after_their_delay():
    config = make_config("stationary", click_delay=30, **SMALL)
    world = World(config, 10, seed=0)
    clicked, reported = set(), []
    for step in range(200):
        out = world.serve(world.reference_slates())
        assert not out["clicks"].any()  # nothing on this step's slates is reported now
        rows, pos = np.nonzero(out["truth"]["clicks"])
        clicked |= {(int(out["request_id"][r]), int(p)) for r, p in zip(rows, pos,
                                                                        strict=True)}
        r = out["click_reports"]
        reported += [(step, int(a), int(b), int(d), int(row)) for a, b, d, row in
                     zip(r.request_id, r.position, r.delay, r.row, strict=True)]
        np.testing.assert_allclose(out["reward"], np.bincount(r.row, minlength=10)
                                   + np.bincount(out["conversions"].row, minlength=10))
    keys = [(a, b) for _, a, b, _, _ in reported]
    assert len(keys) == len(set(keys)) and set(keys) <= clicked
    assert len(keys) > 0.8 * len(clicked)
    for step, request, _, delay, row in reported:
        assert delay == 30 and step == max(request // 10 + 1, (request + 30) // 10)
        assert request % 10 == row


def test_realistic_conversion_delays_match_the_published_shape():
    config = make_config("stationary", ticks_per_hour=100.0)
    rng = np.random.default_rng(0)
    n = 200_000
    delays = conversion_delays(config, rng.random(n), rng.standard_exponential(n))
    reported = delays > 0
    assert reported.mean() > 0.99  # almost all within the 30-day window
    hours = delays[reported] / 100.0
    assert abs((hours <= 1).mean() - 0.35) < 0.02
    assert abs((hours <= 24).mean() - 0.50) < 0.02


def test_drift_schedule_is_a_labelled_table():
    env = VectorRerankEnv(100, "mixed", max_steps=500, **SMALL)
    env.reset(seed=0)
    table = env.drift_schedule
    assert list(table.columns) == ["kind", "onset", "width", "magnitude", "share", "mechanism"]
    kinds = set(table.kind)
    assert {"abrupt", "recall_shift", "churn", "gradual", "quality_drift"} <= kinds
    abrupt = table[table.kind == "abrupt"].iloc[0]
    assert abrupt.onset == 30_000 and abrupt.share == 0.4
    assert (table[table.kind == "churn"].onset.diff().dropna() == 2000).all()
    assert table.onset.max() < 500 * 100


def test_stale_oracle_is_the_oracle_until_something_drifts():
    world = World(make_config("abrupt-shift", abrupt_times=(500,), **SMALL), 100, seed=0)
    np.testing.assert_array_equal(world.frozen_reference_slates(), world.reference_slates())
    for _ in range(6):
        world.serve(world.reference_slates())
    stale, best = world.frozen_reference_slates(), world.reference_slates()
    assert (stale != best).any(axis=1).mean() > 0.5
    assert world.expected_reward(stale).mean() < 0.8 * world.expected_reward(best).mean()


@pytest.mark.parametrize("scenario, overrides", [
    ("abrupt-shift", dict(abrupt_times=(3000,))),
    ("quality-drift", dict(quality_shock_times=(3000,), quality_drift_timescale=3000.0)),
    ("cold-churn", dict(churn_interval=500)),
])
def test_headroom_is_positive_after_drift_and_zero_when_stationary(scenario, overrides):
    kw = dict(requests=8000, batch=200, window=2000, n_users=400, n_items=400)
    drifting = [measure_headroom(scenario, seed=s, **kw, **overrides) for s in range(3)]
    after = np.array([d.headroom[d.after_event & (d.tick_start >= 4000)].mean()
                      for d in drifting])
    assert after.mean() - 2 * after.std(ddof=1) / np.sqrt(3) > 0.05
    still = measure_headroom("stationary", seed=0, **kw)
    assert np.abs(still.headroom).max() < 1e-6


@pytest.mark.parametrize("kwargs, message", [
    (dict(user_features="latent"), r"user_features='latent' must be one of \('history'"),
    (dict(click_delay=-1), r"click_delay=-1 must be an integer >= 0"),
    (dict(join_rate=1.5), r"join_rate=1.5 must lie in \[0, 1\]"),
    (dict(stats_refresh=2.5), r"stats_refresh=2.5 must be an integer >= 0"),
    (dict(conversion_delay="weibull"), r"conversion_delay='weibull' must be one of"),
    (dict(profile_half_lives=()), r"profile_half_lives=\(\) must be 1 to 4"),
    (dict(initial_active_share=0.0), r"initial_active_share=0 must lie in \(0, 1\]"),
])
def test_bad_v2_settings_name_the_setting_and_the_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_config("stationary", **kwargs)


def test_stale_oracle_agent_serves_the_frozen_reference():
    from driftrank.agents import AgentContext, make_agent

    env = VectorRerankEnv(50, "taste-shift", abrupt_times=(200,), **SMALL)
    obs, _ = env.reset(seed=0)
    agent = make_agent("stale-oracle", AgentContext(world=env.config, seed=0))
    assert agent.needs_world
    with pytest.raises(RuntimeError, match="attach_world"):
        agent.act(obs)
    agent.attach_world(env.world)
    for _ in range(6):
        slates = agent.act(obs)
        np.testing.assert_array_equal(slates, env.world.frozen_reference_slates())
        obs = env.step(slates)[0]
    getattr(agent, "close", lambda: None)()


def test_feedback_from_a_step_carries_labels_and_no_truth():
    from driftrank.envs import Feedback

    env = VectorRerankEnv(20, "delayed-feedback", click_delay=40, **SMALL)
    obs, _ = env.reset(seed=0)
    seen = 0
    for _ in range(8):
        slates = env.world.reference_slates()
        _, reward, _, _, info = env.step(slates)
        fb = Feedback.from_step(info, slates, reward, obs)
        assert not fb.clicks.any() and not hasattr(fb, "truth")
        seen += len(fb.click_reports)
        assert (fb.click_reports.request_id < info["request_id"][0]).all()
    assert seen > 0
