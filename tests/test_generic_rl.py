"""The README's generic-RL path: a Stable-Baselines3 PPO policy trains on the wrapped env.

Marker ``rl_library`` (deselect with ``-m "not rl_library"``); skipped when stable-baselines3 is
not installed (it is in the ``dev`` extra).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from driftrank.envs.wrappers import ScoreActionWrapper

pytest.importorskip("stable_baselines3")
pytestmark = pytest.mark.rl_library

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "generic_rl" / "ppo_rerank.py"
WORLD = dict(n_users=300, n_items=300)


def _example():
    spec = importlib.util.spec_from_file_location("ppo_rerank", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wrapped_env_is_a_flat_box_without_ids():
    ex = _example()
    env = ex.make_env(**WORLD)
    base = env.unwrapped
    n, fi = base.config.n_candidates, base.config.item_feature_dim
    fu, fc = base.config.user_feature_dim, base.config.context_dim
    assert env.observation_space.shape == (fu + fc + n * fi,)  # no candidate_ids, no user_id
    assert env.action_space.shape == (n,)
    obs, _ = env.reset(seed=0)
    for _ in range(50):
        obs, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all() and np.abs(obs).max() < 20  # normalised, no raw ids


def test_ppo_trains_a_few_iterations_and_serves_valid_slates():
    torch.set_num_threads(1)
    ex = _example()
    model, env = ex.train(total_timesteps=512, n_steps=256, **WORLD)
    assert model.num_timesteps == 512  # two PPO iterations ran
    before = ex.make_env(**WORLD)  # a fresh policy for comparison of weights
    from stable_baselines3 import PPO

    untrained = PPO("MlpPolicy", before, seed=0, device="cpu",
                    policy_kwargs={"net_arch": [64, 64]})
    changed = [not torch.equal(a, b) for a, b in zip(model.policy.state_dict().values(),
                                                       untrained.policy.state_dict().values(),
                                                       strict=True)]
    assert any(changed)  # the updates moved the policy
    obs, _ = env.reset(seed=3)
    scores, _ = model.predict(obs, deterministic=True)
    wrapper = env
    while not isinstance(wrapper, ScoreActionWrapper):
        wrapper = wrapper.env
    k = env.unwrapped.config.slate_size
    slate = wrapper.action(scores)  # what the env serves: the top K scores, best first
    top = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    np.testing.assert_array_equal(slate, top)
    assert len(set(slate.tolist())) == k
    assert np.isfinite(ex.mean_reward(model, env, steps=50))
