"""The Gymnasium contract of RerankEnv / VectorRerankEnv."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import driftrank.envs as E
from driftrank.envs import RerankEnv, ScoreActionWrapper, VectorRerankEnv

SMALL = dict(n_users=300, n_items=200, warmup_ticks=1000)


@pytest.mark.parametrize("scenario", E.scenario_names())
def test_check_env_passes_without_warnings(scenario):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(E.ENV_ID, scenario=scenario, max_steps=30, **SMALL)
        check_env(env.unwrapped)


def test_make_vec_uses_vector_entry_point():
    envs = gym.make_vec(E.ENV_ID, num_envs=8, vectorization_mode="vector_entry_point", **SMALL)
    assert isinstance(envs, VectorRerankEnv)
    obs, _ = envs.reset(seed=1)
    assert obs["candidates"].shape == (8, 50, envs.config.item_feature_dim)
    assert obs in envs.observation_space
    obs, reward, term, trunc, info = envs.step(envs.action_space.sample())
    assert reward.shape == (8,) and not term.any() and not trunc.any()
    assert info["truth"]["click_probs"].shape == (8, 10)


def _rollout(env, seed, steps, k=10):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [obs]
    for _ in range(steps):
        n = env.config.n_candidates
        if isinstance(env, VectorRerankEnv):
            action = np.stack([rng.permutation(n)[:k] for _ in range(env.num_envs)])
        else:
            action = rng.permutation(n)[:k]
        obs, reward, _, _, info = env.step(action)
        out.append((obs, reward, info["truth"], info["clicks"]))
    return out


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("batch", [1, 8])
def test_same_seed_same_trajectory(batch):
    a = _rollout(VectorRerankEnv(batch, "mixed", **SMALL), seed=5, steps=40)
    b = _rollout(VectorRerankEnv(batch, "mixed", **SMALL), seed=5, steps=40)
    _assert_same(a, b)
    c = _rollout(VectorRerankEnv(batch, "mixed", **SMALL), seed=6, steps=3)
    assert not np.array_equal(a[0]["candidate_ids"], c[0]["candidate_ids"])


def test_single_env_equals_vector_env_with_batch_one():
    single = _rollout(RerankEnv("mixed", **SMALL), seed=9, steps=60)
    vector = _rollout(VectorRerankEnv(1, "mixed", **SMALL), seed=9, steps=60)
    _assert_same(single[0], {k: v[0] for k, v in vector[0].items()})
    for (o1, r1, t1, c1), (o2, r2, t2, c2) in zip(single[1:], vector[1:], strict=True):
        _assert_same(o1, {k: v[0] for k, v in o2.items()})
        assert r1 == pytest.approx(float(r2[0]))
        np.testing.assert_array_equal(c1, c2[0])
        np.testing.assert_array_equal(t1["click_probs"], t2["click_probs"][0])
        assert t1["reference_reward"] == pytest.approx(float(t2["reference_reward"][0]))


def test_repeated_index_leaves_slot_empty_and_strict_rejects_it():
    env = RerankEnv("stationary", **SMALL)
    env.reset(seed=0)
    action = np.array([3, 3, 3, 4, 5, 6, 7, 8, 9, 10])
    _, _, _, _, info = env.step(action)
    assert info["empty_slots"] == 2
    assert info["clicks"][1] == 0 and info["clicks"][2] == 0
    assert info["truth"]["click_probs"][1] == 0 and info["truth"]["click_probs"][2] == 0
    assert list(info["served_item_ids"][1:3]) == [-1, -1]
    strict = RerankEnv("stationary", strict=True, **SMALL)
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="repeats candidate 3"):
        strict.step(action)


@pytest.mark.parametrize(
    "action, message",
    [
        (np.arange(9), "shape"),
        (np.arange(11), "shape"),
        (np.arange(10) + 45, "out of range"),
        (np.arange(10) - 1, "out of range"),
        (np.arange(10, dtype=np.float64), "float dtype"),
        (np.array(["a"] * 10), "integer candidate indices"),
    ],
)
def test_bad_actions_raise_and_leave_world_unchanged(action, message):
    env = RerankEnv("abrupt-shift", **SMALL)
    fresh = RerankEnv("abrupt-shift", **SMALL)
    obs, _ = env.reset(seed=3)
    fresh.reset(seed=3)
    with pytest.raises(ValueError, match=message):
        env.step(action)
    good = np.arange(10)
    after_error = env.step(good)
    clean = fresh.step(good)
    _assert_same(after_error[0], clean[0])
    assert after_error[1] == clean[1]


def test_vector_env_bad_action_shape_names_fault():
    env = VectorRerankEnv(4, **SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 10\), expected \(4, 10\)"):
        env.step(np.zeros((3, 10), np.int64))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scenario="no-such-world"), "unknown scenario"),
        (dict(slate_size=60), "slate_size K=60 exceeds n_candidates"),
        (dict(n_candidates=500, n_items=300), "n_candidates N=500 exceeds n_items"),
        (dict(consumption_rate=-0.1), "consumption_rate"),
        (dict(churn_fraction=-1.0), "churn_fraction"),
        (dict(n_userz=5), "unknown world setting"),
    ],
)
def test_bad_config_errors_name_the_fault(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RerankEnv(**kwargs)


def test_truncation_and_vector_autoreset():
    env = VectorRerankEnv(2, max_steps=3, **SMALL)
    env.reset(seed=0)
    action = np.tile(np.arange(10), (2, 1))
    truncs = [env.step(action)[3].all() for _ in range(3)]
    assert truncs == [False, False, True]
    obs, reward, term, trunc, _ = env.step(action)  # next-step autoreset
    assert not trunc.any() and np.all(reward == 0)
    single = RerankEnv(max_steps=2, **SMALL)
    single.reset(seed=0)
    assert single.step(np.arange(10))[3] is False
    assert single.step(np.arange(10))[3] is True


def test_score_action_wrapper_serves_top_k():
    env = ScoreActionWrapper(RerankEnv(**SMALL))
    env.reset(seed=0)
    scores = np.zeros(50, np.float32)
    scores[[7, 3, 44]] = [3.0, 2.0, 1.0]
    assert list(env.action(scores)[:3]) == [7, 3, 44]
    assert len(set(env.action(scores).tolist())) == 10
    _, _, _, _, info = env.step(scores)
    assert info["empty_slots"] == 0
    with pytest.raises(ValueError, match="one score per candidate"):
        env.step(np.zeros(10))


def test_check_env_passes_on_the_score_wrapped_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the one warning Gymnasium gives for any wrapped env, whatever the wrapper
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(ScoreActionWrapper(gym.make(E.ENV_ID, scenario="mixed", max_steps=30, **SMALL)))


def test_docstring_feature_sizes_are_the_real_ones():
    import re

    doc = RerankEnv.__doc__
    fu = int(re.search(r"Fu = [^=]+= (\d+)", doc).group(1))
    fi = int(re.search(r"Fi = [^=]+= (\d+)", doc).group(1))
    space = RerankEnv().observation_space
    assert fu == space["user"].shape[0] and fi == space["candidates"].shape[1]
    for name in E.scenario_names():
        assert f"`{name}`" in doc


@pytest.mark.parametrize("scenario", ["stationary", "churn", "cold-churn"])
def test_id_bounds_are_honest(scenario):
    """Declared id bounds are what an episode can reach, not 2**62, and ids stay inside."""
    churn = {} if scenario == "stationary" else dict(churn_interval=200)
    env = VectorRerankEnv(50, scenario, max_steps=40, **churn, **SMALL)
    space = env.single_observation_space
    item_hi, user_hi = int(space["candidate_ids"].high.max()), int(space["user_id"].high)
    assert item_hi < 10 * SMALL["n_items"] and user_hi < 10 * SMALL["n_users"]
    if scenario == "stationary":
        assert (item_hi, user_hi) == (SMALL["n_items"] - 1, SMALL["n_users"] - 1)
    obs, _ = env.reset(seed=0)
    action = np.tile(np.arange(10), (50, 1))
    for _ in range(40):
        assert obs in env.observation_space
        obs = env.step(action)[0]
    assert obs in env.observation_space


def test_render_ansi_shows_the_slate():
    env = RerankEnv(render_mode="ansi", **SMALL)
    env.reset(seed=0)
    assert "no slate" in env.render()
    env.step(np.arange(10))
    text = env.render()
    assert "item_id" in text and len(text.strip().splitlines()) == 12
