"""Offline logs: one row per shown item, a real behaviour policy, parquet round trip."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import make_config
from driftrank.envs.logs import LoggedData, behaviour_slates, generate_logs
from driftrank.envs.world import World


@pytest.fixture(scope="module")
def logs():
    return generate_logs("abrupt-shift", n_requests=1200, seed=3, batch_size=400,
                         n_users=400, n_items=300)


def test_one_row_per_shown_item_with_documented_columns(logs):
    df = logs.shown
    assert len(df) == 1200 * 10
    for column in ("request_id", "time", "user_id", "item_id", "position", "slate", "click",
                   "conversion", "conversion_delay", "user_f0", "item_f0"):
        assert column in df.columns
    assert df.groupby("request_id").position.apply(list).map(lambda p: p == list(range(10))).all()
    assert (df.groupby("request_id").item_id.nunique() == 10).all()
    # conversions only on clicks, with a positive delay; no delay otherwise
    assert (df.click[df.conversion == 1] == 1).all()
    assert (df.conversion_delay[df.conversion == 1] >= 1).all()
    assert (df.conversion_delay[df.conversion == 0] == -1).all()
    first = df[df.request_id == df.request_id.min()]
    assert list(first.slate.iloc[0]) == first.item_id.tolist()


def test_logs_come_from_the_pre_drift_world(logs):
    assert logs.config.abrupt_times == () and logs.config.scenario == "abrupt-shift"
    online = World(make_config("abrupt-shift", n_users=400, n_items=300), 1, seed=3)
    # the logged items are the online world's items: same ids, same fixed features
    config = logs.config
    fixed = config.n_topics + config.obs_dim
    ids = logs.shown.item_id.to_numpy()
    logged = logs.shown[[f"item_f{j}" for j in range(fixed)]].to_numpy()
    assert ids.max() < config.n_items  # no churn in this world: ids are catalog slots
    np.testing.assert_array_equal(logged, online.items.static[ids])
    # ... and the logged users are its users: clicks follow the online world's tastes
    users = logs.shown.user_id.to_numpy()
    affinity = np.einsum("rd,rd->r", online.users.taste[users], online.items.v[ids])
    clicked = logs.shown.click.to_numpy() == 1
    assert affinity[clicked].mean() > affinity[~clicked].mean() + 0.1


def test_request_arrays_match_the_frame(logs):
    r = logs.requests
    assert r["candidates"].shape == (1200, 50, logs.config.item_feature_dim)
    items = np.take_along_axis(r["candidate_ids"], r["slates"], axis=1).reshape(-1)
    np.testing.assert_array_equal(items, logs.shown.item_id.to_numpy())
    np.testing.assert_array_equal(r["clicks"].reshape(-1), logs.shown.click.to_numpy())
    train, test = logs.split(0.25)
    assert len(train["slates"]) == 900 and len(test["slates"]) == 300


def test_behaviour_policy_is_better_than_random_and_explores():
    world = World(make_config("stationary", n_users=400, n_items=300), 3000, seed=1)
    rng = np.random.default_rng(0)
    slates = behaviour_slates(world.true_attraction(), 10, 1.0, 0.1, rng)
    assert all(len(set(s)) == 10 for s in slates.tolist())
    random = np.argsort(rng.random((3000, 50)), axis=1)[:, :10]
    assert world.expected_reward(slates).mean() > 1.4 * world.expected_reward(random).mean()
    greedy = behaviour_slates(world.true_attraction(), 10, 0.0, 0.0, rng)
    assert world.expected_reward(greedy).mean() > world.expected_reward(slates).mean()


def test_save_and_load_round_trip(logs, tmp_path):
    logs.save(tmp_path / "logs")
    back = LoggedData.load(tmp_path / "logs")
    assert back.config == logs.config
    assert back.shown.drop(columns="slate").equals(logs.shown.drop(columns="slate"))
    assert [list(s) for s in back.shown.slate] == [list(s) for s in logs.shown.slate]
    for key, value in logs.requests.items():
        np.testing.assert_array_equal(back.requests[key], value)
    with pytest.raises(FileNotFoundError, match="regenerate"):
        LoggedData.load(tmp_path / "missing")


def test_same_seed_same_logs():
    a = generate_logs("stationary", n_requests=300, seed=1, n_users=200, n_items=150)
    b = generate_logs("stationary", n_requests=300, seed=1, n_users=200, n_items=150)
    assert a.shown.drop(columns="slate").equals(b.shown.drop(columns="slate"))


def test_logs_hold_the_clicks_made_even_when_they_are_reported_late():
    """With a click delay the logs join the late reports: the same clicks as without a delay,
    except the requests whose clicks had not been reported when the window closed."""
    from driftrank.envs.logs import generate_logs

    now = generate_logs("stationary", n_requests=3000, seed=2, n_users=300, n_items=200)
    late = generate_logs("stationary", n_requests=3000, seed=2, n_users=300, n_items=200,
                         click_delay=400)
    a, b = now.requests["clicks"], late.requests["clicks"]
    assert a.sum() > 0
    np.testing.assert_array_equal(b[:2000], a[:2000])  # all reported by the end
    assert b[2600:].sum() == 0  # the last 400 ticks' clicks were still on their way
