"""Train a Stable-Baselines3 PPO policy on driftrank's single-request env.

The generic-RL path (see the README, "Generic RL libraries"): a library that knows nothing about
slates sees a flat ``Box`` observation and a ``Box`` action of one score per candidate.

    ScoreActionWrapper   action = N scores; the env serves the K best, so every action is a
                         valid slate of distinct candidates
    FilterObservation    drop ``candidate_ids`` and ``user_id``: ids are names, not magnitudes
                         (raw catalog ids reach about 10^4 against a declared bound of 2^62; an
                         MLP on them learns nothing that transfers, and churn invents new ones)
    FlattenObservation   user ++ context ++ (N x Fi) candidate features as one vector
    NormalizeObservation running mean / std per feature, for the counters (impressions,
                         visit and click counts) whose scale grows while the episode runs

Run it: ``python examples/generic_rl/ppo_rerank.py`` (needs ``pip install stable-baselines3``).
"""

from __future__ import annotations

import gymnasium as gym

from driftrank.envs import RerankEnv
from driftrank.envs.wrappers import ScoreActionWrapper

OBSERVED = ("user", "context", "candidates")  # what the policy reads (no ids)


def make_env(scenario: str = "stationary", seed: int = 0, **world) -> gym.Env:
    """The wrapper stack above around ``RerankEnv(scenario, **world)``."""
    env = RerankEnv(scenario, **world)
    env = ScoreActionWrapper(env)
    env = gym.wrappers.FilterObservation(env, list(OBSERVED))
    env = gym.wrappers.FlattenObservation(env)
    env = gym.wrappers.NormalizeObservation(env)
    env.reset(seed=seed)
    return env


def train(total_timesteps: int = 2_048, n_steps: int = 256, seed: int = 0,
          scenario: str = "stationary", **world):
    """PPO for ``total_timesteps`` env steps (``total_timesteps / n_steps`` iterations)."""
    from stable_baselines3 import PPO

    env = make_env(scenario, seed=seed, **world)
    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=64, n_epochs=2, seed=seed,
                policy_kwargs={"net_arch": [64, 64]}, device="cpu", verbose=0)
    model.learn(total_timesteps=total_timesteps)
    return model, env


def mean_reward(model, env: gym.Env, steps: int = 500, seed: int = 1) -> float:
    """Mean reward per request of the deterministic policy over ``steps`` requests."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    return total / steps


if __name__ == "__main__":
    model, env = train(total_timesteps=20_480, n_steps=1_024)
    print(f"PPO, {model.num_timesteps} steps: mean reward/request "
          f"{mean_reward(model, env):.3f}")
    random_policy = type("Random", (), {"predict": lambda self, obs, deterministic: (
        env.action_space.sample(), None)})()
    print(f"random scores: {mean_reward(random_policy, env):.3f}")
    print(f"observation: {env.observation_space.shape[0]} features")
