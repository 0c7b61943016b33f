"""Behaviour of the slate generator: valid slates, consistent log-probs, perturbation hooks,
and training that beats the logging policy on the synthetic world's truth."""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import pytest
import torch
from conftest_models import heldout_data, train_data, trained_evaluator, world

from driftrank.generator import (
    CheckpointError,
    GeneratorConfig,
    SlateGenerator,
    imitation_targets,
    load,
    reward_to_go,
    save,
    train_imitation,
    train_policy_gradient,
)

torch.set_num_threads(1)


def _config(**kw) -> GeneratorConfig:
    c = world().config
    return GeneratorConfig(c.user_dim, c.item_dim, c.slate_size, **{"hidden": 32, **kw})


def _inputs(b=6, n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = world().config
    return (
        torch.randn(b, c.user_dim, generator=g),
        torch.randn(b, n, c.item_dim, generator=g),
        torch.randint(0, 10**12, (b, n), generator=g),
    )


def _assert_distinct(slates: torch.Tensor, n: int):
    s = slates.sort(dim=1).values
    assert (s[:, 1:] != s[:, :-1]).all()
    assert slates.min() >= 0 and slates.max() < n


def _true_clicks(model) -> float:
    batch, truth = heldout_data()
    with torch.no_grad():
        s = model.greedy(batch["user"], batch["candidates"], batch["candidate_ids"]).numpy()
    _assert_distinct(torch.as_tensor(s), batch["candidates"].shape[1])
    return float(world().expected_clicks(truth, s).mean())


def _behaviour_clicks() -> float:
    batch, truth = heldout_data()
    return float(world().expected_clicks(truth, batch["slates"]).mean())


# -- slates and log-probs -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [50, 10])  # n == K: every candidate is used exactly once
def test_slates_never_repeat_an_item(n):
    model = SlateGenerator(_config()).eval()
    user, cand, ids = _inputs(b=32, n=n)
    with torch.no_grad():
        _assert_distinct(model.greedy(user, cand, ids), n)
        for seed in range(3):
            gen = torch.Generator().manual_seed(seed)
            _assert_distinct(model.sample(user, cand, ids, generator=gen), n)


def test_log_prob_matches_decode_and_sampling():
    model = SlateGenerator(_config()).eval()
    user, cand, ids = _inputs()
    enc, h0 = model.encode(user, cand, ids)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        slates, logp_sampled = model.decode(enc, h0, greedy=False, generator=gen)
        _, logp_forced = model.decode(enc, h0, slates=slates)
        total = model.log_prob(user, cand, ids, slates)
    assert torch.allclose(logp_sampled, logp_forced, atol=1e-6)
    assert torch.allclose(total, logp_forced.sum(1), atol=1e-6)
    assert (logp_forced <= 0).all()


def test_slate_probabilities_sum_to_one():
    c = world().config
    model = SlateGenerator(GeneratorConfig(c.user_dim, c.item_dim, 3, hidden=16)).eval()
    user, cand, ids = _inputs(b=2, n=4)
    perms = torch.tensor(list(itertools.permutations(range(4), 3)))  # 24 ordered slates
    with torch.no_grad():
        lp = torch.stack([
            model.log_prob(user[i : i + 1].expand(len(perms), -1),
                           cand[i : i + 1].expand(len(perms), -1, -1),
                           ids[i : i + 1].expand(len(perms), -1), perms)
            for i in range(2)
        ])
    assert torch.allclose(lp.exp().sum(1), torch.ones(2), atol=1e-5)


def test_sampling_is_seeded():
    model = SlateGenerator(_config()).eval()
    user, cand, ids = _inputs(b=16)
    with torch.no_grad():
        a = model.sample(user, cand, ids, torch.Generator().manual_seed(1))
        b = model.sample(user, cand, ids, torch.Generator().manual_seed(1))
        c = model.sample(user, cand, ids, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_teacher_forcing_rejects_repeats_and_gradients_reach_activations():
    model = SlateGenerator(_config())
    user, cand, ids = _inputs(b=2)
    enc, h0 = model.encode(user, cand, ids)
    with pytest.raises(ValueError, match="repeat"):
        model.decode(enc, h0, slates=torch.tensor([[0, 0, 1], [1, 2, 3]]))
    enc = enc.detach().requires_grad_(True)
    h0 = h0.detach().requires_grad_(True)
    _, logp = model.decode(enc, h0, slates=torch.arange(10).repeat(2, 1))
    logp.sum().backward()
    assert enc.grad.abs().sum() > 0 and h0.grad.abs().sum() > 0


# -- perturbation hooks (LAST) --------------------------------------------------------------------


def test_perturbed_h0_changes_slates_and_zero_perturbation_reproduces_greedy():
    model = SlateGenerator(_config()).eval()
    user, cand, ids = _inputs(b=32)
    with torch.no_grad():
        base = model.greedy(user, cand, ids)
        enc, h0 = model.encode(user, cand, ids)
        same, _ = model.decode(enc, h0 + torch.zeros_like(h0), greedy=True)
        g = torch.Generator().manual_seed(0)
        moved, _ = model.decode(enc, h0 + 2.0 * torch.randn(h0.shape, generator=g), greedy=True)
        enc_moved, _ = model.decode(enc + torch.randn(enc.shape, generator=g), h0, greedy=True)
    assert torch.equal(same, base)
    assert (moved != base).any(dim=1).float().mean() > 0.5
    assert (enc_moved != base).any(dim=1).float().mean() > 0.5


def test_flattened_perturbation_batch_and_param_delta():
    model = SlateGenerator(_config()).eval()
    user, cand, ids = _inputs(b=8)
    p = 5
    names = model.perturbable_parameters()
    params = dict(model.named_parameters())
    assert names and all(n in params for n in names)
    with torch.no_grad():
        base = model.greedy(user, cand, ids)
        enc, h0 = model.encode(user, cand, ids)
        enc_p, h0_p = enc.repeat_interleave(p, 0), h0.repeat_interleave(p, 0)
        flat, _ = model.decode(enc_p, h0_p, greedy=True)
        assert torch.equal(flat, base.repeat_interleave(p, 0))
        zero = {n: torch.zeros((8 * p, *params[n].shape)) for n in names}
        assert torch.equal(model.decode(enc_p, h0_p, param_delta=zero)[0], flat)
        g = torch.Generator().manual_seed(0)
        delta = {n: torch.randn((8 * p, *params[n].shape), generator=g) for n in names}
        moved, _ = model.decode(enc_p, h0_p, param_delta=delta)
    _assert_distinct(moved, 50)
    assert (moved != flat).any(dim=1).float().mean() > 0.5
    # a per-row offset equals permanently shifting the parameter, for that row
    with torch.no_grad():
        row = {n: d[:1] for n, d in delta.items()}
        shifted = SlateGenerator(_config()).eval()
        shifted.load_state_dict(model.state_dict())
        for n, d in row.items():
            dict(shifted.named_parameters())[n].add_(d[0])
        assert torch.equal(shifted.decode(enc_p[:1], h0_p[:1])[0], moved[:1])
    with pytest.raises(ValueError, match="unknown"):
        model.decode(enc, h0, param_delta={"cell.weight_hh": torch.zeros(1)})


# -- training -------------------------------------------------------------------------------------


def test_imitation_targets_put_clicked_items_first_in_logged_order():
    slates = np.array([[5, 3, 9, 1], [0, 1, 2, 3]])
    clicks = np.array([[0, 1, 0, 1], [0, 0, 0, 0]], dtype=np.float32)
    assert imitation_targets(slates, clicks).tolist() == [[3, 1, 5, 9], [0, 1, 2, 3]]


def test_reward_to_go():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    assert reward_to_go(r).tolist() == [[6.0, 5.0, 3.0]]


@lru_cache(maxsize=1)
def _imitated() -> SlateGenerator:
    model = SlateGenerator(_config())
    train_imitation(model, train_data(), epochs=3, batch_size=128, lr=3e-3, seed=0)
    return model


def test_imitation_then_policy_gradient_beats_the_logged_slates():
    model = SlateGenerator(_config())
    model.load_state_dict(_imitated().state_dict())
    out = train_policy_gradient(model, trained_evaluator(), train_data(), steps=60,
                                batch_size=64, lr=1e-3, seed=0)
    assert len(out["reward"]) == 60 and np.isfinite(out["behaviour_reward"])
    assert _true_clicks(model) > _behaviour_clicks() + 0.25, (
        _true_clicks(model), _behaviour_clicks())


def test_policy_gradient_alone_learns_from_the_evaluator():
    """From random weights, REINFORCE against the evaluator must climb well past the untrained
    policy and past the logging policy (a sign error or a detached log-prob cannot)."""
    model = SlateGenerator(_config())
    before = _true_clicks(model)
    ev = trained_evaluator()
    ev.train()  # the trainer must freeze and restore it
    try:
        train_policy_gradient(model, ev, train_data(), steps=150, batch_size=64, lr=3e-3, seed=0)
        assert ev.training
    finally:
        ev.eval()
    after = _true_clicks(model)
    assert after > before + 0.6 and after > _behaviour_clicks() + 0.1, (before, after)


def test_imitation_anchor_resists_a_misleading_evaluator():
    """Policy gradient against a reward model that is wrong (it pays for what the world
    dislikes) drags the policy down; the imitation term keeps it near the warm start."""
    ev = trained_evaluator()

    def misleading(user, items, ids):
        return 1.0 - ev(user, items, ids)

    results = {}
    for coef in (0.0, 2.0):
        model = SlateGenerator(_config())
        model.load_state_dict(_imitated().state_dict())
        train_policy_gradient(model, misleading, train_data(), steps=60, batch_size=64,
                              lr=3e-3, seed=0, imitation_coef=coef)
        results[coef] = _true_clicks(model)
    warm = _true_clicks(_imitated())
    assert results[2.0] > results[0.0] + 1.0, (warm, results)
    assert results[2.0] > 0.9 * warm, (warm, results)
    with pytest.raises(ValueError, match="clicks"):
        data = {k: v for k, v in train_data().items() if k != "clicks"}
        train_policy_gradient(SlateGenerator(_config()), ev, data, steps=1, imitation_coef=1.0)


def test_same_seed_gives_identical_weights():
    data = {k: v[:256] for k, v in train_data().items()}
    states = []
    for _ in range(2):
        model = SlateGenerator(_config(seed=5))
        train_imitation(model, data, epochs=1, batch_size=64, seed=3)
        train_policy_gradient(model, trained_evaluator(), data, steps=3, batch_size=32, seed=3)
        states.append(model.state_dict())
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    other = SlateGenerator(_config(seed=6)).state_dict()
    assert not torch.equal(other["pointer_query.weight"], states[0]["pointer_query.weight"])


# -- checkpoints and bench ------------------------------------------------------------------------


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    model = _imitated()
    d = save(model, model.config, tmp_path / "gen")
    loaded = load(d)
    user, cand, ids = _inputs(b=4)
    with torch.no_grad():
        assert torch.equal(model.greedy(user, cand, ids), loaded.greedy(user, cand, ids))
        enc_a, h_a = model.encode(user, cand, ids)
        enc_b, h_b = loaded.encode(user, cand, ids)
    assert torch.equal(enc_a, enc_b) and torch.equal(h_a, h_b)
    (d / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError,
                       match=r"model\.pt.*pretraining cache, run the command again"):
        load(d)
    from driftrank.evaluator import load as load_evaluator

    d2 = save(model, model.config, tmp_path / "gen2")
    with pytest.raises(CheckpointError, match="'generator' checkpoint, expected 'evaluator'"):
        load_evaluator(d2)


def test_serving_decoder_gives_decodes_slates():
    """``decode_slates`` (keys once per request, G rows per request in one product, offsets by
    linearity) serves what ``decode`` gives on the explicitly repeated and offset inputs; a
    decoder that ignored the offset, the grouping or the noise would not."""
    from driftrank.generator.model import gumbel_noise

    model = SlateGenerator(_config()).eval()
    user, cand, ids = _inputs(b=4)
    b, n, k, g = 4, cand.shape[1], model.config.slate_size, 3
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        enc, h0 = model.encode(user, cand, ids)
        assert torch.equal(model.decode_slates(enc, h0), model.decode(enc, h0)[0])
        noise = gumbel_noise(torch.rand(b * g, k, n, generator=gen))
        h = h0.repeat_interleave(g, 0) + 0.5 * torch.randn(b * g, h0.shape[1], generator=gen)
        want = model.decode(enc.repeat_interleave(g, 0), h, noise=noise)[0]
        got = model.decode_slates(enc, h, noise=noise)
        assert torch.equal(got, want)
        assert not torch.equal(got, model.decode_slates(enc, h))  # the noise matters
        d = enc.std() * torch.randn(enc.shape, generator=gen)
        scale = torch.tensor([0.5, -1.0, 2.0]).repeat(b)
        e = enc.repeat_interleave(g, 0) + scale.view(-1, 1, 1) * d.repeat_interleave(g, 0)
        moved = model.decode_slates(enc, h, enc_offset=d, offset_scale=scale)
        assert torch.equal(moved, model.decode(e, h)[0])
        assert not torch.equal(moved, model.decode_slates(enc, h))  # the offset matters
    _assert_distinct(moved, n)
