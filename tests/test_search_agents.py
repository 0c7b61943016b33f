"""The search agents (last, best-of-n, reloop2, last+reloop2): the same slates on the local and
Ray backends, a memory that changes what is served (and survives a save/load), a refreshable
judge, actors that close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from driftrank.agents import AgentContext, make_agent
from driftrank.envs import Feedback, VectorRerankEnv

TINY = dict(n_requests=2000, evaluator_epochs=1, imitation_epochs=1, pg_steps=10,
            eval_requests=100)
WORLD = dict(n_users=300, n_items=200)
SEARCH_AGENTS = ["last", "best-of-n", "reloop2", "last+reloop2"]
MEMORY_AGENTS = ["reloop2", "last+reloop2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("pretrained")


def _agent(name, env, cache, **config):
    ctx = AgentContext(world=env.config, seed=0, cache_dir=cache)
    return make_agent(name, ctx, pretrain_config=TINY, **config)


def _feedback(obs, slates, clicks):
    b = len(slates)
    zeros = np.zeros(slates.shape)
    return Feedback(np.arange(b), slates, clicks, zeros, zeros.sum(1), obs)


def _serve(agent, env, steps, seed=3):
    obs, _ = env.reset(seed=seed)
    served = []
    try:
        for _ in range(steps):
            slates = agent.act(obs)
            nxt, reward, _, _, info = env.step(slates)
            agent.observe(Feedback(info["request_id"], slates, info["clicks"],
                                   info["conversions"], reward, obs))
            served.append(slates)
            obs = nxt
    finally:
        agent.close()
    return np.stack(served)


@pytest.mark.parametrize("name", SEARCH_AGENTS)
def test_ray_backend_serves_the_same_slates_as_local(name, cache, ray_session):
    env = VectorRerankEnv(16, "abrupt-shift", abrupt_times=(40,), **WORLD)
    local = _serve(_agent(name, env, cache), env, 4)
    agent = _agent(name, env, cache, backend="ray", ray_actors=2)
    remote = _serve(agent, env, 4)
    np.testing.assert_array_equal(remote, local)
    assert agent._backend is None  # close() stopped the actors


def _teach_that_the_served_items_are_bad(agent, obs, batch_index=0, repeats=30):
    """Write feedback saying: the items the agent serves now never get clicks, the items of
    its other candidates always do. Returns the slates served before."""
    from driftrank.agents.pretrained import model_inputs

    x = model_inputs(obs)
    res = agent.search.search(x["user"], x["candidates"], x["candidate_ids"], batch_index)
    others = res.candidate_slates[:, -1]  # the last resample of each request
    for _ in range(repeats):
        agent.observe(_feedback(obs, res.slates, np.zeros(res.slates.shape)))
        agent.observe(_feedback(obs, others, np.ones(others.shape)))
    return res


def _served_now(agent, obs, batch_index=0):
    from driftrank.agents.pretrained import model_inputs

    x = model_inputs(obs)
    return agent.search.search(x["user"], x["candidates"], x["candidate_ids"], batch_index)


@pytest.mark.parametrize("name", MEMORY_AGENTS)
def test_selection_follows_the_memory_when_it_says_the_evaluator_is_wrong(name, cache):
    env = VectorRerankEnv(24, "abrupt-shift", **WORLD)
    agent = _agent(name, env, cache)
    obs, _ = env.reset(seed=5)
    before = _teach_that_the_served_items_are_bad(agent, obs)
    after = _served_now(agent, obs)
    changed = (after.slates != before.slates).any(axis=1)
    assert changed.mean() > 0.5, changed.mean()
    # the newly served slates hold fewer of the items the memory says get no clicks
    overlap_before = overlap_after = 0
    for i in range(len(before.slates)):
        bad = set(before.slates[i].tolist())
        overlap_before += len(bad)
        overlap_after += len(bad & set(after.slates[i].tolist()))
    assert overlap_after < 0.9 * overlap_before, (overlap_after, overlap_before)


@pytest.mark.parametrize("name", MEMORY_AGENTS)
def test_memory_is_restored_on_load(name, cache):
    env = VectorRerankEnv(24, "abrupt-shift", **WORLD)
    taught = _agent(name, env, cache)
    obs, _ = env.reset(seed=6)
    _teach_that_the_served_items_are_bad(taught, obs)
    want = _served_now(taught, obs).slates
    fresh = _served_now(_agent(name, env, cache), obs).slates
    assert (want != fresh).any()  # the memory does change what is served
    loaded = _agent(name, env, cache)
    loaded.load_state_dict(taught.state_dict())
    np.testing.assert_array_equal(_served_now(loaded, obs).slates, want)


def test_refresh_retrains_the_evaluator_only_and_resets_the_memory(cache):
    env = VectorRerankEnv(20, "abrupt-shift", **WORLD)
    agent = _agent("last+reloop2", env, cache, refresh_period=40)
    assert agent.period == 40
    ev0 = {k: v.clone() for k, v in agent.evaluator.state_dict().items()}
    gen0 = {k: v.clone() for k, v in agent.generator.state_dict().items()}
    _serve(agent, env, 2)
    assert agent.compensated.memory.n_written > 0
    agent.on_period(40)
    assert agent.refreshes == 1 and agent.compensated.memory.n_written == 0
    assert any(not torch.equal(v, agent.evaluator.state_dict()[k]) for k, v in ev0.items())
    assert all(torch.equal(v, agent.generator.state_dict()[k]) for k, v in gen0.items())
    assert agent.search.evaluator is agent.evaluator
    with pytest.raises(ValueError, match="refresh_period"):
        _agent("last", env, cache, refresh_period=0)


def test_best_of_n_is_lasts_control(cache):
    env = VectorRerankEnv(8, "abrupt-shift", **WORLD)
    agent = _agent("best-of-n", env, cache, candidates=8)
    assert agent.search.steps == () and agent.search.resamples == 8
    assert agent.search.n_candidates == _agent("last", env, cache).search.n_candidates
    assert agent.search.judge is None
