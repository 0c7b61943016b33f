"""The model-adaptation agents (adapter, film, maml) in cells: deterministic by seed, state
round-trips, what moves and what stays frozen, and on Ray through the grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from driftrank.agents import AgentContext, available_agents, make_agent
from driftrank.envs import Feedback, VectorRerankEnv
from driftrank.experiments.grid import GridSpec, run_grid
from driftrank.experiments.results import load_results
from driftrank.experiments.runner import TIMING_COLUMNS, VOLATILE_COLUMNS, run_cell

TINY = dict(n_requests=2000, evaluator_epochs=1, imitation_epochs=1, pg_steps=10,
            eval_requests=100)
WORLD = dict(n_users=300, n_items=200)
CONFIGS = {
    "adapter": dict(period=200, pg_steps=2, pretrain_config=TINY),
    "film": dict(period=200, pg_steps=2, pretrain_config=TINY),
    "maml": dict(meta_config=dict(steps=10, tasks_per_step=8), pretrain_config=TINY),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("pretrained")


def cell(name, seed=0):
    return dict(scenario="abrupt-shift", agent=name, seed=seed, requests=400, batch=100,
                window=200, agent_config=CONFIGS[name], world=dict(WORLD, abrupt_times=(300,)))


def test_the_three_agents_are_registered_with_a_description():
    agents = available_agents()
    for name in CONFIGS:
        assert name in agents and agents[name].origin == "builtin" and agents[name].description


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_gives_identical_frames(name, cache):
    a = run_cell(cell(name), cache_dir=cache)
    b = run_cell(cell(name), cache_dir=cache)
    assert len(a) == 2
    pd.testing.assert_frame_equal(a.drop(columns=list(TIMING_COLUMNS)),
                                  b.drop(columns=list(TIMING_COLUMNS)))


def _serve(agent, env, steps, seed=0):
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        slates = agent.act(obs)
        next_obs, reward, _, _, info = env.step(slates)
        agent.observe(Feedback(info["request_id"], slates, info["clicks"], info["conversions"],
                               reward, obs))
        obs = next_obs
    return obs


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_round_trips_and_only_the_adaptive_part_moves(name, cache):
    env = VectorRerankEnv(100, "abrupt-shift", abrupt_times=(200,), **WORLD)
    ctx = AgentContext(world=env.config, seed=0, cache_dir=cache)
    agent = make_agent(name, ctx, **CONFIGS[name])
    static = make_agent("static", ctx, pretrain_config=TINY)
    base = {k: v.clone() for k, v in static.evaluator.state_dict().items()}
    obs = _serve(agent, env, steps=2)
    if name == "maml":
        assert len(agent.fast.table) > 0  # users who clicked got their own offset
    else:
        agent.on_period(200)
        assert agent.updates == 1
        for key, value in agent.evaluator.base.state_dict().items():
            assert torch.equal(value, base[key]), key  # the pretrained base stays frozen
        moved = [p for p in agent.evaluator.patches.parameters() if p.abs().sum() > 0]
        assert moved
    twin = make_agent(name, ctx, **CONFIGS[name])
    twin.load_state_dict(agent.state_dict())
    np.testing.assert_array_equal(agent.act(obs), twin.act(obs))
    fresh = make_agent(name, ctx, **CONFIGS[name])
    assert not np.array_equal(agent.act(obs), fresh.act(obs))  # the adaptation changed slates


def test_the_three_agents_run_on_ray_like_in_series(ray_session, tmp_path, cache):
    spec = GridSpec(scenarios=["abrupt-shift"], agents=[(n, c) for n, c in CONFIGS.items()],
                    seeds=[0], requests=200, batch=100, window=200,
                    world=dict(WORLD, abrupt_times=(200,)))
    run_grid(spec, tmp_path / "serial", progress=False, cache_dir=cache)
    summary = run_grid(spec, tmp_path / "ray", launcher="ray", num_cpus_per_cell=0.5,
                       progress=False, cache_dir=cache)
    assert summary.ok and len(summary.completed) == 3
    serial, on_ray = load_results(tmp_path / "serial"), load_results(tmp_path / "ray")
    assert (on_ray["node_id"] != "local").all()
    pd.testing.assert_frame_equal(serial.drop(columns=list(VOLATILE_COLUMNS)),
                                  on_ray.drop(columns=list(VOLATILE_COLUMNS)))
