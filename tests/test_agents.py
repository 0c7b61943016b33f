"""Built-in agents: the contract, the ordering of references, who changes which weights."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from driftrank.agents import AgentContext, available_agents, make_agent
from driftrank.envs import Feedback, VectorRerankEnv

TINY = dict(n_requests=2000, evaluator_epochs=1, imitation_epochs=1, pg_steps=10,
            eval_requests=100)
WORLD = dict(n_users=300, n_items=200)
BUILTIN = ["random", "oracle", "static", "incremental", "reloop", "drn", "last", "reloop2",
           "last+reloop2", "best-of-n"]
MODEL_AGENTS = {"static", "incremental", "reloop", "last", "reloop2", "last+reloop2",
                "best-of-n"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("pretrained")


def _config(name, pretrain=TINY):
    config = {"pretrain_config": pretrain} if name in MODEL_AGENTS else {}
    if name in ("incremental", "reloop"):
        config["period"] = 200
    if name == "drn":
        config["period"] = 200
    return config


def _run(name, env, cache, steps, seed=0, with_truth=True, pretrain=TINY):
    ctx = AgentContext(world=env.config, seed=seed, cache_dir=cache)
    agent = make_agent(name, ctx, **_config(name, pretrain))
    obs, _ = env.reset(seed=seed)
    if getattr(agent, "needs_world", False):
        agent.attach_world(env.world)
    rewards, done = [], 0
    for _ in range(steps):
        slates = agent.act(obs)
        b, n = obs["candidate_ids"].shape
        assert slates.shape == (b, env.config.slate_size) and slates.dtype.kind == "i"
        assert slates.min() >= 0 and slates.max() < n
        assert all(len(set(row)) == len(row) for row in slates.tolist())
        next_obs, reward, _, _, info = env.step(slates)
        assert with_truth or "truth" not in info
        agent.observe(Feedback(info["request_id"], slates, info["clicks"], info["conversions"],
                               reward, obs))
        done += b
        period = getattr(agent, "period", None)
        if isinstance(period, int) and done % period == 0:
            agent.on_period(done)
        rewards.append(float(info["truth"]["expected_reward"].mean()) if with_truth
                       else float(reward.mean()))
        obs = next_obs
    return agent, np.array(rewards)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_agent_runs_500_requests_and_round_trips_its_state(name, cache):
    env = VectorRerankEnv(50, "abrupt-shift", abrupt_times=(250,), **WORLD)
    agent, _ = _run(name, env, cache, steps=10)
    state = agent.state_dict()
    twin = make_agent(name, AgentContext(world=env.config, seed=0, cache_dir=cache),
                      **_config(name))
    twin.load_state_dict(state)
    obs, _ = env.reset(seed=3)
    for a in (agent, twin):
        if getattr(a, "needs_world", False):
            a.attach_world(env.world)
    np.testing.assert_array_equal(agent.act(obs), twin.act(obs))


@pytest.mark.parametrize("name", [n for n in BUILTIN if n != "oracle"])
def test_agents_work_without_any_truth(name, cache):
    """Agents other than the oracle never read the world's truth: with truth switched off in
    the env (info has no 'truth'), and no world attached, they still run."""
    env = VectorRerankEnv(50, "abrupt-shift", with_truth=False, abrupt_times=(250,), **WORLD)
    agent, _ = _run(name, env, cache, steps=6, with_truth=False)
    assert not getattr(agent, "needs_world", False)


def test_oracle_beats_static_beats_random_on_a_stationary_world(cache):
    env = VectorRerankEnv(100, "stationary", **WORLD)
    pretrain = dict(TINY, n_requests=6000, evaluator_epochs=3, imitation_epochs=2, pg_steps=40)
    means = {name: _run(name, env, cache, steps=15, pretrain=pretrain)[1].mean()
             for name in ("random", "static", "oracle")}
    assert means["oracle"] > 1.3 * means["static"]
    assert means["static"] > 1.1 * means["random"]


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["incremental", "reloop"])
def test_incremental_agents_change_their_models_every_period(name, cache):
    env = VectorRerankEnv(50, "abrupt-shift", **WORLD)
    ctx = AgentContext(world=env.config, seed=0, cache_dir=cache)
    agent = make_agent(name, ctx, **_config(name))
    obs, _ = env.reset(seed=0)
    for period in range(2):
        before_ev, before_gen = _weights(agent.evaluator), _weights(agent.generator)
        for _ in range(4):  # 4 x 50 = one period of 200 requests
            slates = agent.act(obs)
            nxt, reward, _, _, info = env.step(slates)
            agent.observe(Feedback(info["request_id"], slates, info["clicks"],
                                   info["conversions"], reward, obs))
            obs = nxt
        agent.on_period(200 * (period + 1))
        assert not _same(before_ev, _weights(agent.evaluator))
        assert not _same(before_gen, _weights(agent.generator))
    assert agent.updates == 2


@pytest.mark.parametrize("name", ["static", "last", "last+reloop2", "reloop2"])
def test_serving_time_agents_never_modify_the_deployed_models(name, cache):
    env = VectorRerankEnv(50, "abrupt-shift", abrupt_times=(100,), **WORLD)
    ctx = AgentContext(world=env.config, seed=0, cache_dir=cache)
    agent = make_agent(name, ctx, **_config(name))
    gen0, ev0 = _weights(agent.generator), _weights(agent.evaluator)
    obs, _ = env.reset(seed=0)
    changed = 0
    for _ in range(6):
        slates = agent.act(obs)
        if hasattr(agent, "last_result"):
            changed += int((agent.last_result.winner != 0).sum())
        nxt, reward, _, _, info = env.step(slates)
        agent.observe(Feedback(info["request_id"], slates, info["clicks"], info["conversions"],
                               reward, obs))
        obs = nxt
    assert _same(gen0, _weights(agent.generator)) and _same(ev0, _weights(agent.evaluator))
    assert all(not p.requires_grad or p.grad is None for p in agent.generator.parameters())
    if name != "static":
        assert changed > 0  # the search did serve something other than the greedy slate


def test_registry_errors_name_the_fault(cache):
    ctx = AgentContext(world=VectorRerankEnv(1, **WORLD).config, cache_dir=cache)
    with pytest.raises(ValueError, match="unknown agent 'nope'.*available agents"):
        make_agent("nope", ctx)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['perod'\]"):
        make_agent("incremental", ctx, perod=5)
    descriptions = {n: e.description for n, e in available_agents().items()}
    assert all(descriptions[n] for n in BUILTIN)


def test_entry_point_plugin_is_discovered_without_changing_driftrank(tmp_path, monkeypatch):
    """A real importlib.metadata discovery: a dist-info folder with an entry point on sys.path."""
    pkg = tmp_path / "site" / "myplugin_agents"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import numpy as np

        class FirstK:
            name = "first-k"
            def __init__(self, context, offset: int = 0):
                self.k, self.offset = context.slate_size, offset
            def act(self, obs):
                b = obs["candidate_ids"].shape[0]
                return np.tile(np.arange(self.k) + self.offset, (b, 1))
            def observe(self, feedback):
                pass
    """))
    dist = tmp_path / "site" / "myplugin_agents-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin-agents\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[driftrank.agents]\nfirst-k = myplugin_agents:FirstK\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "first-k" in available_agents()
    env = VectorRerankEnv(4, **WORLD)
    obs, _ = env.reset(seed=0)
    agent = make_agent("first-k", AgentContext(world=env.config), offset=2)
    np.testing.assert_array_equal(agent.act(obs)[0], np.arange(10) + 2)
    with pytest.raises(ValueError, match="unknown config key"):
        make_agent("first-k", AgentContext(world=env.config), bogus=1)
    sys.modules.pop("myplugin_agents", None)
