"""DRN agent: dueling head, double-DQN target, interleaving, dueling bandit, activeness, smoke."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from driftrank.agents import AgentContext, make_agent, periods_between
from driftrank.agents.drn import (
    ActivenessTable,
    DRNAgent,
    DuelingQNet,
    _occurrence_rounds,
    activeness_after_visit,
    dbgd_update,
    double_dqn_target,
    dueling_combine,
    epsilon_greedy_slates,
    explore_weights,
    probabilistic_interleave,
)
from driftrank.envs import VectorRerankEnv, make_config
from driftrank.envs.types import Feedback

SMALL = dict(n_users=300, n_items=200)


def _params(agent):
    return [p.detach().clone() for p in agent.online.parameters()]


def _feedback(obs, slates, clicks, request_id):
    return Feedback(request_id=request_id, slates=slates, clicks=clicks,
                    conversions=None, reward=clicks.sum(1), obs=obs)


# ----------------------------------------------------------------------------- dueling head
def test_dueling_combination_by_hand():
    v = torch.tensor([1.0, -2.0])
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    q = dueling_combine(v, a)
    torch.testing.assert_close(q, torch.tensor([[0.0, 1.0, 2.0], [-3.0, -3.0, 0.0]]))


def test_network_output_is_value_plus_centred_advantage():
    torch.manual_seed(0)
    net = DuelingQNet(user_dim=5, context_dim=2, item_dim=6, obs_dim=2, n_topics=2, hidden=8)
    user, ctx, items = torch.randn(3, 5), torch.randn(3, 2), torch.randn(3, 7, 6)
    q, v, a = net(user, ctx, items)
    assert q.shape == (3, 7) and v.shape == (3,) and a.shape == (3, 7)
    torch.testing.assert_close(q, v[:, None] + a - a.mean(1, keepdim=True))
    # identifiability: the mean Q over a request's candidates is its state value
    torch.testing.assert_close(q.mean(1), v)
    # V depends on the state only: permuting candidates permutes Q and leaves V alone
    perm = torch.randperm(7)
    q2, v2, _ = net(user, ctx, items[:, perm])
    torch.testing.assert_close(v2, v)
    torch.testing.assert_close(q2, q[:, perm])


# ----------------------------------------------------------------------------- double DQN
def test_double_dqn_target_online_chooses_target_values():
    reward = torch.tensor([1.0, 0.5, 2.0])
    done = torch.tensor([False, False, True])
    q_online = torch.tensor([[1.0, 5.0, 2.0], [0.0, 1.0, 9.0], [7.0, 0.0, 0.0]])
    q_target = torch.tensor([[10.0, 0.0, 3.0], [4.0, 8.0, 3.0], [5.0, 5.0, 5.0]])
    y = double_dqn_target(reward, done, q_online, q_target, gamma=0.4)
    # row 0: online picks a'=1, target values it 0 (max target would be 10, max online 5)
    # row 1: online picks a'=2, target values it 3 (max target would be 8)
    # row 2: terminal -> y = r
    torch.testing.assert_close(y, torch.tensor([1.0, 0.5 + 0.4 * 3.0, 2.0]))


# ----------------------------------------------------------------------------- interleaving
def _pl(n, tau=3.0):
    w = 1.0 / np.arange(1, n + 1) ** tau
    return w / w.sum()


def test_probabilistic_interleaving_probabilities():
    n, draws = 6, 40_000
    rank_a = np.tile(np.arange(n), (draws, 1))  # item i at rank i + 1
    rank_b = np.tile(np.array([3, 5, 0, 1, 4, 2]), (draws, 1))
    slate, contributor = probabilistic_interleave(rank_a, rank_b, 4, np.random.default_rng(0))
    assert slate.shape == (draws, 4) and slate.dtype == np.int64
    assert contributor.shape == (draws, 4)
    assert all(len(set(row)) == 4 for row in slate[:200].tolist())
    p_a = _pl(n)
    p_b = np.empty(n)
    p_b[rank_b[0]] = _pl(n)
    first = np.bincount(slate[:, 0], minlength=n) / draws
    expected = 0.5 * p_a + 0.5 * p_b
    sigma = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(first - expected) < 4 * sigma + 1e-9), (first, expected)
    # conditioned on the contributor, the first slot follows that list's distribution
    from_a = contributor[:, 0] == 0
    assert abs(from_a.mean() - 0.5) < 0.01
    np.testing.assert_allclose(np.bincount(slate[from_a, 0], minlength=n) / from_a.sum(), p_a,
                               atol=0.01)
    np.testing.assert_allclose(np.bincount(slate[~from_a, 0], minlength=n) / (~from_a).sum(),
                               p_b, atol=0.01)
    # second slot from list a, given the first was item 0: renormalised over unused items
    sel = (slate[:, 0] == 0) & (contributor[:, 1] == 0)
    second = np.bincount(slate[sel, 1], minlength=n) / sel.sum()
    renorm = p_a.copy()
    renorm[0] = 0
    np.testing.assert_allclose(second, renorm / renorm.sum(), atol=0.02)


def test_interleaving_of_identical_lists_is_the_list_distribution_and_fills_every_slot():
    rank = np.tile(np.arange(5), (3, 1))
    slate, _ = probabilistic_interleave(rank, rank, 5, np.random.default_rng(1))
    assert all(sorted(row) == list(range(5)) for row in slate.tolist())
    with pytest.raises(ValueError):
        probabilistic_interleave(rank, rank[:, :4], 2, np.random.default_rng(0))


def test_epsilon_greedy_zero_is_top_k_and_one_is_random():
    q = np.tile(np.arange(20.0)[::-1], (500, 1))  # candidate 0 is best
    greedy = epsilon_greedy_slates(q, 5, 0.0, np.random.default_rng(0))
    assert (greedy == np.arange(5)).all()
    rand = epsilon_greedy_slates(q, 5, 1.0, np.random.default_rng(0))
    assert all(len(set(r)) == 5 for r in rand.tolist())
    assert (rand[:, 0] >= 5).mean() > 0.6  # mostly not the greedy choice


# ----------------------------------------------------------------------------- dueling bandit
def test_explore_weights_are_a_relative_uniform_perturbation():
    w = [torch.full((4, 3), 2.0), torch.tensor([-1.0, 0.0, 4.0])]
    e = explore_weights(w, 0.1, np.random.default_rng(0))
    rel = (e[0] - w[0]) / w[0]
    assert rel.abs().max() <= 0.1 and rel.std() > 0.01
    assert e[1][1] == 0.0  # a zero weight stays zero (perturbation proportional to W)
    moved = dbgd_update(w, e, 0.05)
    torch.testing.assert_close(moved[0], w[0] + 0.05 * (e[0] - w[0]))


@pytest.fixture(scope="module")
def env_obs():
    env = VectorRerankEnv(64, "abrupt-shift", **SMALL)
    obs, _ = env.reset(seed=0)
    return env.config, obs


def _credit_clicks(agent, obs, winner: int | None):
    """Act once with dbgd, then click only the slots ``winner`` contributed (None: tie)."""
    slates = agent.act(obs)
    served = agent._served
    contributor = served["contributor"]
    if winner is None:
        clicks = np.zeros(slates.shape, np.float32)
        clicks[:, 0] = 1.0
        diff = int((contributor[:, 0] == 1).sum() - (contributor[:, 0] == 0).sum())
        fix_col = np.flatnonzero(contributor[:, 1] == (0 if diff > 0 else 1))[:abs(diff)]
        clicks[fix_col, 1] = 1.0
    else:
        clicks = (contributor == winner).astype(np.float32)
    return slates, clicks, served


def test_explorer_wins_moves_weights_by_eta_toward_the_explorer(env_obs):
    config, obs = env_obs
    agent = DRNAgent(AgentContext(world=config, seed=3), eta=0.05, period=10_000)
    before = _params(agent)
    slates, clicks, served = _credit_clicks(agent, obs, winner=1)
    agent.observe(_feedback(obs, slates, clicks, np.arange(64)))
    after = _params(agent)
    for w, e, new in zip(before, served["explorer"], after, strict=True):
        torch.testing.assert_close(new, w + 0.05 * (e - w))
    assert any(not torch.equal(w, new) for w, new in zip(before, after, strict=True))
    assert agent.minor_wins == 1
    # the target network is untouched by minor updates
    for t, w in zip(agent.target.parameters(), before, strict=True):
        assert torch.equal(t, w)


@pytest.mark.parametrize("winner", [0, None])
def test_no_move_when_the_explorer_loses_or_ties(env_obs, winner):
    config, obs = env_obs
    agent = DRNAgent(AgentContext(world=config, seed=3), period=10_000)
    before = _params(agent)
    slates, clicks, served = _credit_clicks(agent, obs, winner=winner)
    if winner is None:
        c = served["contributor"]
        assert clicks[c == 1].sum() == clicks[c == 0].sum() > 0
    agent.observe(_feedback(obs, slates, clicks, np.arange(64)))
    for w, new in zip(before, _params(agent), strict=True):
        assert torch.equal(w, new)
    assert agent.minor_wins == 0


# ----------------------------------------------------------------------------- activeness
def test_activeness_decays_between_visits_and_rises_on_return_capped_at_one():
    table = ActivenessTable(n_users=3, tau=100.0, boost=0.32, init=0.5)
    np.testing.assert_allclose(table.visit(np.array([0]), np.array([0])), [0.5])
    decayed = table.peek(np.array([0]), np.array([50]))
    np.testing.assert_allclose(decayed, [0.5 * np.exp(-0.5)])
    back = table.visit(np.array([0]), np.array([50]))
    np.testing.assert_allclose(back, [0.5 * np.exp(-0.5) + 0.32])
    assert back[0] > decayed[0]
    for tick in (51, 52, 53):  # quick returns saturate at 1
        a = table.visit(np.array([0]), np.array([tick]))
    assert a[0] == 1.0
    assert table.peek(np.array([0]), np.array([1000]))[0] < 1e-3  # long absence: near 0
    # other users are untouched; the pure formula matches
    assert table.last[1] == -1 and table.value[1] == 0.0
    np.testing.assert_allclose(activeness_after_visit(np.array([0.9]), np.array([0.0]), 10.0,
                                                      0.32), [1.0])


def test_rewards_in_replay_are_click_plus_beta_activeness(env_obs):
    config, _ = env_obs
    agent = DRNAgent(AgentContext(world=config, seed=0), beta=0.05, period=10_000,
                     activeness_tau=100.0, exploration="greedy")
    rng = np.random.default_rng(0)
    n, k, fu, fi = config.n_candidates, config.slate_size, config.user_feature_dim, \
        config.item_feature_dim

    def obs_for(user):
        return {"user": rng.random((1, fu), np.float32),
                "context": rng.random((1, config.context_dim), np.float32),
                "candidates": rng.random((1, n, fi), np.float32),
                "candidate_ids": rng.permutation(config.n_items)[None, :n],
                "user_id": np.array([user])}

    first, second = obs_for(7), obs_for(7)
    slate = np.arange(k)[None]
    clicks = np.zeros((1, k), np.float32)
    clicks[0, 2] = 1.0
    agent.observe(_feedback(first, slate, clicks, np.array([10])))
    assert agent.replay.size == 0  # pending until the user returns
    agent.observe(_feedback(second, slate, np.zeros((1, k), np.float32), np.array([60])))
    assert agent.replay.size == k
    active = 0.5 * np.exp(-50 / 100.0) + 0.32
    expected = clicks[0] + 0.05 * active
    np.testing.assert_allclose(agent.replay.data["reward"][:k], expected, rtol=1e-6)
    np.testing.assert_array_equal(agent.replay.data["next_ids"][0], second["candidate_ids"][0])
    assert not agent.replay.data["done"][:k].any()
    # the second request never sees a return: after the horizon it is closed as terminal
    agent.expire_pending(now=60 + agent.horizon)
    assert agent.replay.size == 2 * k and agent.replay.data["done"][k:2 * k].all()
    # an env reset (ticks start again) closes what is pending and restarts activeness
    agent.observe(_feedback(obs_for(7), slate, clicks, np.array([200])))
    agent.observe(_feedback(obs_for(7), slate, clicks, np.array([3])))
    assert agent.replay.size == 3 * k and agent.replay.data["done"][2 * k:3 * k].all()
    assert agent.activeness.value[7] == 0.5 and agent.now == 3


# ----------------------------------------------------------------------------- smoke
def _run(agent, env, obs, steps):
    for _ in range(steps):
        slates = agent.act(obs)
        assert slates.shape == (env.num_envs, env.config.slate_size)
        assert slates.dtype == np.int64
        assert ((slates >= 0) & (slates < env.config.n_candidates)).all()
        assert all(len(set(row)) == len(row) for row in slates.tolist())
        obs_served = obs
        obs, reward, _, _, info = env.step(slates)
        agent.observe(Feedback(request_id=info["request_id"], slates=slates,
                               clicks=info["clicks"], conversions=info["conversions"],
                               reward=reward, obs=obs_served))
        served = agent.requests_seen
        for requests in periods_between(served - len(slates), served, agent.period):
            agent.on_period(requests)
    return obs


def test_agent_runs_learns_and_round_trips_its_state():
    env = VectorRerankEnv(64, "abrupt-shift", **SMALL)
    obs, _ = env.reset(seed=0)
    context = AgentContext(world=env.config, seed=0)
    config = dict(period=128, batch_size=64, gradient_steps=5, replay_size=4000)
    agent = make_agent("drn", context, **config)
    assert isinstance(agent, DRNAgent) and agent.name == "drn"
    obs = _run(agent, env, obs, 8)  # 512 requests
    assert agent.major_updates == 4
    assert agent.replay.size > 0 and not agent.replay.data["done"][: agent.replay.size].all()
    # a major update changes the online weights and syncs the target network to them
    before = _params(agent)
    agent.major_update()
    after = _params(agent)
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    for t, a in zip(agent.target.parameters(), after, strict=True):
        assert torch.equal(t, a)

    state = agent.state_dict()
    clone = make_agent("drn", AgentContext(world=env.config, seed=99), **config)
    clone.load_state_dict(state)
    slates = agent.act(obs)
    np.testing.assert_array_equal(clone.act(obs), slates)
    # and they keep learning identically (replay, pending, activeness, rng all restored)
    _, reward, _, _, info = env.step(slates)
    feedback = Feedback(request_id=info["request_id"], slates=slates, clicks=info["clicks"],
                        conversions=info["conversions"], reward=reward, obs=obs)
    for a in (agent, clone):
        a.observe(feedback)
        a.major_update()
    assert clone.replay.size == agent.replay.size
    for p, q in zip(_params(agent), _params(clone), strict=True):
        assert torch.equal(p, q)
    # the state is a snapshot, not a view of live buffers
    agent.replay.data["reward"][:] = -5.0
    assert (state["replay"]["reward"] != -5.0).all()


def test_unknown_exploration_and_config_keys_are_rejected():
    context = AgentContext(world=make_config("stationary", **SMALL))
    with pytest.raises(ValueError, match="exploration"):
        make_agent("drn", context, exploration="ucb")
    with pytest.raises(ValueError, match="unknown config"):
        make_agent("drn", context, gama=0.5)


def test_a_user_twice_in_one_batch_is_handled_in_tick_order():
    rounds = _occurrence_rounds(np.array([5, 3, 5, 5, 2]))
    assert [r.tolist() for r in rounds] == [[0, 1, 4], [2], [3]]


def test_warm_start_learns_from_offline_logs_then_forgets_per_user_time():
    context = AgentContext(world=make_config("stationary", **SMALL), seed=0)
    cold = DRNAgent(context, period=200, batch_size=32, gradient_steps=2)
    warm = DRNAgent(context, period=200, batch_size=32, gradient_steps=2,
                    warm_start_requests=600)
    assert warm.major_updates == 4  # 3 during the logs + 1 after closing what was pending
    assert warm.replay.size == 600 * context.slate_size  # every logged impression is replayed
    assert (warm.pending["tick"] == -1).all() and (warm.activeness.last == -1).all()
    assert warm.now == -1 and warm.requests_seen == 0
    assert any(not torch.equal(a, b) for a, b in zip(_params(cold), _params(warm),
                                                     strict=True))


def test_td_loss_uses_the_double_dqn_target_online_chooses_target_values(env_obs):
    """The loss the agent trains on: Huber(Q_W(s, a), r + gamma * Q_W'(s', argmax Q_W(s', .)))
    computed by hand from the two nets; the plain DQN target (max of W') gives another value."""
    config, obs = env_obs
    agent = DRNAgent(AgentContext(world=config, seed=0), period=10_000, gamma=0.9)
    with torch.no_grad():  # a target net that disagrees with the online net
        gen = torch.Generator().manual_seed(5)
        for p in agent.target.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    b, n = 32, config.n_candidates
    rng = np.random.default_rng(1)
    agent.items.update(np.arange(config.n_items),
                       rng.random((config.n_items, config.item_feature_dim), np.float32))
    batch = {
        "user": obs["user"][:b], "context": obs["context"][:b], "ids": obs["candidate_ids"][:b],
        "action": rng.integers(0, n, b), "reward": rng.random(b).astype(np.float32),
        "done": np.arange(b) % 4 == 0, "next_user": obs["user"][b:2 * b],
        "next_context": obs["context"][b:2 * b], "next_ids": obs["candidate_ids"][b:2 * b],
    }
    f = torch.as_tensor
    with torch.no_grad():
        items, next_items = (f(agent.items.lookup(batch[k])) for k in ("ids", "next_ids"))
        q = agent.online(f(batch["user"]), f(batch["context"]), items)[0]
        q_sa = q[torch.arange(b), f(batch["action"])]
        nxt = (f(batch["next_user"]), f(batch["next_context"]), next_items)
        q_online, q_target = agent.online(*nxt)[0], agent.target(*nxt)[0]
        keep = 1.0 - f(batch["done"]).float()
        chosen = q_target[torch.arange(b), q_online.argmax(1)]
        double = torch.nn.functional.smooth_l1_loss(q_sa, f(batch["reward"]) + 0.9 * keep * chosen)
        plain = torch.nn.functional.smooth_l1_loss(
            q_sa, f(batch["reward"]) + 0.9 * keep * q_target.max(1).values)
    assert (q_online.argmax(1) != q_target.argmax(1)).any()  # the two targets differ here
    assert abs(float(double) - float(plain)) > 1e-3
    loss = agent.td_loss(batch)
    assert float(loss.detach()) == pytest.approx(float(double), rel=1e-5)
    loss.backward()  # and it trains the online net only
    assert all(p.grad is None for p in agent.target.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.online.parameters())
