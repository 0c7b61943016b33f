"""LAST (serving-time perturbation search): never worse than greedy by the evaluator, better on
average, generator untouched, all modes, seeded and identical across backends, clear errors."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from conftest_models import heldout_data, train_data, trained_evaluator, world

from driftrank.adapt.backends import LocalBackend
from driftrank.adapt.last import LastSearch, _unit_offset
from driftrank.adapt.last_result import LastResult
from driftrank.adapt.ray_backend import RayBackend
from driftrank.adapt.requests import budget_split, request_seed
from driftrank.evaluator import gather_slate
from driftrank.experiments.bench_adapt import bench_last
from driftrank.generator import GeneratorConfig, SlateGenerator, train_imitation
from driftrank.generator.model import gumbel_noise

torch.set_num_threads(1)

MODES = ("activation", "parameter", "serial")
B = 48


@lru_cache(maxsize=1)
def generator() -> SlateGenerator:
    """A generator trained a little (imitation of the logs): it and the evaluator disagree."""
    c = world().config
    model = SlateGenerator(GeneratorConfig(c.user_dim, c.item_dim, c.slate_size, hidden=32))
    train_imitation(model, train_data(), epochs=1, batch_size=128, lr=3e-3, seed=0)
    model.zero_grad(set_to_none=True)  # training leaves .grad set; LAST must not set any
    return model.eval()


def requests(b: int = B, start: int = 0):
    batch, _ = heldout_data()
    sl = slice(start, start + b)
    return batch["user"][sl], batch["candidates"][sl], batch["candidate_ids"][sl]


def search(**kw) -> LastSearch:
    return LastSearch(generator(), trained_evaluator(), **kw)


def eval_score(user, cand, ids, slates) -> np.ndarray:
    items, item_ids = gather_slate(
        torch.as_tensor(cand), torch.as_tensor(ids), torch.as_tensor(slates)
    )
    with torch.no_grad():
        return trained_evaluator().score(torch.as_tensor(user), items, item_ids).numpy()


def assert_valid(res: LastResult, n: int, k: int = 10):
    s = np.sort(res.slates, axis=1)
    assert res.slates.dtype == np.int64 and res.slates.shape[1] == k
    assert (s[:, 1:] != s[:, :-1]).all(), "a slate repeats an item"
    assert res.slates.min() >= 0 and res.slates.max() < n
    rows = np.arange(len(res))
    np.testing.assert_array_equal(res.scores, res.candidate_scores[rows, res.winner])
    np.testing.assert_array_equal(res.base_scores, res.candidate_scores[:, 0])
    assert res.candidate_scores.shape[1] == len(res.labels)
    assert (res.winner >= 0).all() and (res.winner < len(res.labels)).all()
    np.testing.assert_array_equal(res.slates[res.winner == 0], res.base_slates[res.winner == 0])


# -- the search ----------------------------------------------------------------------------------


def test_served_slate_never_worse_than_greedy_and_better_on_average():
    user, cand, ids = requests()
    res = search().search(user, cand, ids)
    assert_valid(res, cand.shape[1])
    with torch.no_grad():
        greedy = generator().greedy(user, cand, ids).numpy()
    np.testing.assert_array_equal(res.base_slates, greedy)
    base = eval_score(user, cand, ids, greedy)
    served = eval_score(user, cand, ids, res.slates)
    np.testing.assert_allclose(res.base_scores, base, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.scores, served, rtol=1e-5, atol=1e-6)
    assert (res.gain >= 0).all() and (served >= base - 1e-6).all()
    assert res.gain.mean() > 0.05, res.gain.mean()
    # the gradient offsets (not only the random resamples) win a fair share of requests
    n_offsets = len(search().steps)
    assert ((res.winner >= 1) & (res.winner <= n_offsets)).mean() > 0.25, np.bincount(res.winner)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_serves_valid_slates_at_least_as_good(mode):
    user, cand, ids = requests(24)
    s = search(mode=mode)
    res = s.search(user, cand, ids)
    assert_valid(res, cand.shape[1])
    assert len(res.labels) == s.n_candidates + 1 == (9 if mode != "serial" else 8)
    assert (res.gain >= 0).all() and res.gain.mean() > 0
    assert res.changed.any()
    assert res.timing["total"] > 0


def test_generator_and_evaluator_are_left_exactly_as_they_were():
    gen, ev = generator(), trained_evaluator()
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    ev_before = {k: v.clone() for k, v in ev.state_dict().items()}
    flags = {n: p.requires_grad for n, p in gen.named_parameters()}
    ev_flags = {n: p.requires_grad for n, p in ev.named_parameters()}
    ev_grads = {n: None if p.grad is None else p.grad.clone() for n, p in ev.named_parameters()}
    user, cand, ids = requests(8)
    for mode in MODES:
        search(mode=mode).search(user, cand, ids)
    after = gen.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert v.dtype == after[k].dtype and torch.equal(v, after[k]), k
        assert v.numpy().tobytes() == after[k].numpy().tobytes(), k
    for k, v in ev_before.items():
        assert torch.equal(v, ev.state_dict()[k]), k
    for n, p in gen.named_parameters():
        assert p.requires_grad == flags[n] and p.grad is None, n
    for n, p in ev.named_parameters():  # a shared fixture: its training may have left .grad
        assert p.requires_grad == ev_flags[n], n
        if ev_grads[n] is None:
            assert p.grad is None, n
        else:
            assert torch.equal(p.grad, ev_grads[n]), n
    assert not gen.training and not ev.training


def test_evaluator_mode_is_restored():
    ev = trained_evaluator()
    ev.train()
    try:
        search().search(*requests(2))
        assert ev.training
    finally:
        ev.eval()


def test_zero_candidates_serves_the_greedy_slate():
    user, cand, ids = requests(16)
    res = search(steps=(), resamples=0).search(user, cand, ids)
    with torch.no_grad():
        greedy = generator().greedy(user, cand, ids).numpy()
    np.testing.assert_array_equal(res.slates, greedy)
    assert (res.winner == 0).all() and res.labels == ("greedy",)
    assert res.candidate_scores.shape == (16, 1)
    np.testing.assert_allclose(res.scores, eval_score(user, cand, ids, greedy), rtol=1e-5)
    serial = search(mode="serial", serial_steps=0, resamples=0).search(user, cand, ids)
    np.testing.assert_array_equal(serial.slates, greedy)


def test_resamples_only_and_min_gain():
    user, cand, ids = requests(16)
    res = search(steps=(), resamples=3).search(user, cand, ids)
    assert_valid(res, cand.shape[1])
    assert res.labels == ("greedy", "resample0", "resample1", "resample2")
    never = search(min_gain=1e9).search(user, cand, ids)
    assert (never.winner == 0).all()
    np.testing.assert_array_equal(never.slates, never.base_slates)


def test_empty_batch():
    user, cand, ids = requests(0)
    res = search().search(user, cand, ids)
    assert len(res) == 0 and res.slates.shape == (0, 10) and res.candidate_scores.shape == (0, 9)


def test_noise_sampler_is_the_generators_sampling_decode():
    """Per-row noise reproduces decode(greedy=False) bit for bit given the same uniforms, and
    zero noise is the greedy decode."""
    gen = generator()
    user, cand, ids = requests(6)
    with torch.no_grad():
        enc, h0 = gen.encode(user, cand, ids)
        ref, _ = gen.decode(enc, h0, greedy=False, generator=torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)
        u = torch.stack([torch.rand(6, enc.shape[1], generator=g) for _ in range(10)], dim=1)
        np.testing.assert_array_equal(gen.decode(enc, h0, noise=gumbel_noise(u))[0], ref)
        greedy = gen.decode(enc, h0, noise=torch.zeros_like(u))[0]
        np.testing.assert_array_equal(greedy, gen.decode(enc, h0)[0])
        with pytest.raises(ValueError, match="noise must be"):
            gen.decode(enc, h0, noise=u[:, :3])


class RandomDirection(LastSearch):
    """The same search with the gradient replaced by a random direction of the same norm."""

    def _direction(self, advantage, logp, leaves):
        grads = LastSearch._direction(advantage, logp, leaves)
        g = torch.Generator().manual_seed(int(advantage.numel()))
        out = []
        for x in grads:
            r = torch.randn(x.shape, generator=g)
            out.append(r * (x.flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1)).view(
                -1, *([1] * (x.ndim - 1))))
        return tuple(out)


def test_gradient_direction_beats_a_random_direction_of_the_same_norm():
    # by the evaluator, over 400 held-out requests: the best offset candidate (resamples
    # excluded) is better along the gradient than along noise of the same size
    user, cand, ids = requests(400)
    kw = dict(steps=(3.0, 6.0, 9.0, 12.0), resamples=4, seed=2)
    grad = search(**kw).search(user, cand, ids)
    rand = RandomDirection(generator(), trained_evaluator(), **kw).search(user, cand, ids)
    offsets = slice(1, 5)
    best_grad = grad.candidate_scores[:, offsets].max(axis=1) - grad.base_scores
    best_rand = rand.candidate_scores[:, offsets].max(axis=1) - rand.base_scores
    np.testing.assert_array_equal(grad.base_scores, rand.base_scores)
    diff = best_grad - best_rand
    assert diff.mean() > 2 * diff.std() / np.sqrt(diff.size), (diff.mean(), diff.std())


def test_offset_size_and_advantage_by_hand():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # norms 5 and 2
    g = torch.tensor([[0.0, 10.0], [1.0, 0.0]])
    np.testing.assert_allclose(_unit_offset(g, x), [[0.0, 0.05], [0.02, 0.0]], atol=1e-7)
    v_base = torch.tensor([[0.5, 0.2, 0.1]])
    v_res = torch.tensor([[[0.4, 0.4, 0.1], [0.2, 0.2, 0.3]]])  # mean 0.3, 0.3, 0.2
    np.testing.assert_allclose(LastSearch._advantage(v_base, v_res), [[0.2, -0.1, -0.1]],
                               atol=1e-7)
    # no controls: the slate's own mean (0.8 / 3) is the baseline
    np.testing.assert_allclose(LastSearch._advantage(v_base, None),
                               [[0.5 - 0.8 / 3, 0.2 - 0.8 / 3, 0.1 - 0.8 / 3]], atol=1e-7)


def test_signed_steps_are_served_and_labelled():
    user, cand, ids = requests(24)
    s = search(steps=(-6.0, 6.0), resamples=0)
    res = s.search(user, cand, ids)
    assert_valid(res, cand.shape[1])
    assert res.labels == ("greedy", "activation@-6", "activation@6")
    # opposite offsets give different slates for some requests
    assert (res.candidate_slates[:, 1] != res.candidate_slates[:, 2]).any()


def test_seeding_is_per_request_and_reproducible():
    user, cand, ids = requests(20)
    s = search(mode="activation")
    full = s.search(user, cand, ids, batch_index=7)
    again = s.search(user, cand, ids, batch_index=7)
    np.testing.assert_array_equal(full.candidate_scores, again.candidate_scores)
    cuts = (0, 1, 9, 20)
    parts = [
        s.search(user[a:z], cand[a:z], ids[a:z], batch_index=7, row_offset=a)
        for a, z in zip(cuts, cuts[1:], strict=False)
    ]
    chunked = LastResult.concat(parts)
    np.testing.assert_array_equal(chunked.slates, full.slates)
    np.testing.assert_array_equal(chunked.winner, full.winner)
    np.testing.assert_allclose(
        chunked.candidate_scores, full.candidate_scores, rtol=1e-5, atol=1e-6
    )
    other = s.search(user, cand, ids, batch_index=8)
    assert not np.array_equal(other.candidate_scores[:, 5:], full.candidate_scores[:, 5:])
    assert request_seed(0, 7, 3) == request_seed(0, 7, 3) != request_seed(0, 7, 4)
    assert request_seed(0, 7, 3) != request_seed(1, 7, 3) and request_seed(0, 7, 3) < 2**63


def test_custom_judges():
    user, cand, ids = requests(16)
    ev = trained_evaluator()
    worst = search(judge=lambda u, it, i: -ev(u, it, i)).search(user, cand, ids)
    assert (worst.gain >= 0).all()  # by the judge's own standard
    np.testing.assert_allclose(
        worst.scores, -eval_score(user, cand, ids, worst.slates), rtol=1e-5, atol=1e-6
    )
    same = search(judge=lambda u, it, i: ev(u, it, i)).search(user, cand, ids)
    default = search().search(user, cand, ids)
    np.testing.assert_array_equal(same.slates, default.slates)
    with pytest.raises(ValueError, match="judge must return per-position"):
        search(judge=lambda u, it, i: ev.score(u, it, i)).search(user, cand, ids)


def test_budget_split():
    assert budget_split(8) == ((6.0, 7.0, 8.0, 9.0), 4)
    assert budget_split(0) == ((), 0)
    assert budget_split(1) == ((9.0,), 0)
    steps, r = budget_split(16)
    assert len(steps) == 8 and r == 8
    assert LastSearch.with_budget(generator(), trained_evaluator(), 4).n_candidates == 4


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(resamples=-1), "resamples must be an int >= 0"),
        (dict(mode="serial", serial_steps=-2), "serial_steps must be an int >= 0"),
        (dict(steps=(6, 0)), "step sizes must be finite and non-zero"),
        (dict(steps=(float("nan"),)), "step sizes must be finite"),
        (dict(steps="abc"), "steps must be a sequence of numbers"),
        (dict(mode="gradient"), "mode must be one of"),
        (dict(seed=-1), "seed must be an int"),
        (dict(serial_step=0.0), "serial_step must be finite and non-zero"),
        (dict(judge=3), "judge must be callable"),
    ],
)
def test_bad_options_are_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        search(**kw)
    with pytest.raises(ValueError, match="budget P must be an int >= 0"):
        budget_split(-1)


def test_bad_requests_are_rejected():
    user, cand, ids = requests(4)
    s = search()
    bad_user = user.copy()
    bad_user[1, 3] = np.nan
    bad_cand = cand.copy()
    bad_cand[2, 5, 0] = np.inf
    cases = [
        ((user[:, :-1], cand, ids), "user must be"),
        ((user, cand[:3], ids), "candidates must be"),
        ((user, cand[:, :, :-1], ids), "candidates must be"),
        ((user, cand[:, :5], ids[:, :5]), "cannot fill a slate"),
        ((user, cand, ids[:, :-1]), "candidate_ids must be"),
        ((user, cand, ids.astype(np.float64)), "candidate_ids must be integers"),
        ((user, cand, None), "candidate_ids are required"),
        ((bad_user, cand, ids), "user features contain NaN"),
        ((user, bad_cand, ids), "candidate features contain NaN"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            s.search(*args)
    for bad_index in (-1, True, 1.5):
        with pytest.raises(ValueError, match="batch_index must be"):
            s.search(user, cand, ids, batch_index=bad_index)


def test_mismatched_models_are_rejected():
    c = world().config
    gen = SlateGenerator(GeneratorConfig(c.user_dim + 1, c.item_dim, c.slate_size, hidden=16))
    with pytest.raises(ValueError, match="disagree on feature sizes"):
        LastSearch(gen, trained_evaluator())
    with pytest.raises(ValueError, match="must be a ListwiseEvaluator"):
        LastSearch(generator(), object())


# -- backends ------------------------------------------------------------------------------------


def test_local_backend_micro_batches_match_one_call():
    user, cand, ids = requests(20)
    s = search()
    whole = LocalBackend(s).search(user, cand, ids, batch_index=1)
    with LocalBackend(s, micro_batch=6) as be:
        split = be.search(user, cand, ids, batch_index=1)
        many = list(be.search_many([(user, cand, ids, 1), (user[:5], cand[:5], ids[:5], 1)]))
    np.testing.assert_array_equal(split.slates, whole.slates)
    np.testing.assert_array_equal(many[0].slates, whole.slates)
    np.testing.assert_array_equal(many[1].slates, whole.slates[:5])
    with pytest.raises(RuntimeError, match="closed"):
        be.search(user, cand, ids)
    with pytest.raises(ValueError, match="micro_batch"):
        LocalBackend(s, micro_batch=0)


def test_ray_backend_rejects_custom_judges_and_bad_configs():
    s = search(judge=lambda u, it, i: trained_evaluator()(u, it, i))
    with pytest.raises(ValueError, match="CompensatedEvaluator judge only"):
        RayBackend.from_search(s)
    gen, ev = generator(), trained_evaluator()
    with pytest.raises(ValueError, match="configs must be a mapping"):
        RayBackend(gen.state_dict(), ev.state_dict(), {"generator": gen.config})
    with pytest.raises(ValueError, match="n_actors"):
        RayBackend.from_search(search(), n_actors=0)


@pytest.mark.parametrize("mode", ["activation", "serial"])
def test_ray_backend_matches_local(ray_session, mode):
    s = search(mode=mode, seed=3)
    user, cand, ids = requests(13)
    local = LocalBackend(s)
    with RayBackend.from_search(
        s, n_actors=2, num_cpus_per_actor=0.5, max_in_flight=3, timeout_s=120
    ) as be:
        assert be.labels == s.labels
        for bi in (0, 5):
            r, lr = be.search(user, cand, ids, batch_index=bi), local.search(user, cand, ids, bi)
            np.testing.assert_array_equal(r.slates, lr.slates)
            np.testing.assert_array_equal(r.base_slates, lr.base_slates)
            np.testing.assert_array_equal(r.winner, lr.winner)
            np.testing.assert_allclose(
                r.candidate_scores, lr.candidate_scores, rtol=1e-5, atol=1e-6
            )
        reqs = [(user, cand, ids, 2), (user[:1], cand[:1], ids[:1], 3), (*requests(5, 13), 4)]
        got = list(be.search_many(reqs))
        want = list(local.search_many(reqs))
        assert [len(g) for g in got] == [13, 1, 5]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.slates, w.slates)
        with pytest.raises(ValueError, match="user features contain NaN"):
            bad = user.copy()
            bad[0, 0] = np.nan
            be.search(bad, cand, ids)
        for bad_index in (-1, True):  # the same check as LastSearch.search (bools refused)
            with pytest.raises(ValueError, match="batch_index must be"):
                be.search(user, cand, ids, batch_index=bad_index)
    with pytest.raises(RuntimeError, match="closed"):
        be.search(user, cand, ids)


def test_ray_backend_spreads_one_requests_perturbations_like_local(ray_session):
    s = search(mode="parameter", seed=4, steps=(-6.0, 6.0, 8.0), resamples=2)
    user, cand, ids = requests(3)
    with RayBackend.from_search(s, n_actors=2, num_cpus_per_actor=0.5, timeout_s=120,
                                split="candidates") as be:
        assert be._step_groups(3) == [(-6.0, 8.0), (6.0,)]
        got = be.search(user, cand, ids, batch_index=2)
    want = s.search(user, cand, ids, batch_index=2)
    assert got.labels == want.labels
    np.testing.assert_array_equal(got.candidate_slates, want.candidate_slates)
    np.testing.assert_array_equal(got.slates, want.slates)
    np.testing.assert_array_equal(got.winner, want.winner)
    np.testing.assert_allclose(got.candidate_scores, want.candidate_scores, rtol=1e-5, atol=1e-6)


def test_ray_backend_from_explicit_states(ray_session):
    s = search(mode="parameter", resamples=2, seed=1)
    gen, ev = generator(), trained_evaluator()
    configs = {"generator": gen.config, "evaluator": ev.config, "search": s.options()}
    user, cand, ids = requests(4)
    with RayBackend(
        gen.state_dict(),
        ev.state_dict(),
        configs,
        n_actors=1,
        num_cpus_per_actor=0.5,
        timeout_s=120,
    ) as be:
        r = be.search(user, cand, ids, batch_index=9)
    np.testing.assert_array_equal(r.slates, s.search(user, cand, ids, 9).slates)


def test_bench_last_reports_rows():
    rows = bench_last(P_values=(2,), backends=("local",), repeats=3, large_repeats=1, warmup=1,
                      batch_large=4, hidden=16, memory_fill=200)
    methods = [(r["method"], r["P"]) for r in rows]
    assert methods == [("generator_greedy", 0), ("last", 2), ("best-of-n", 2), ("flagship", 2)]
    for r in rows:
        assert r["b1_p50_ms"] > 0 and r["b1_p99_ms"] >= r["b1_p50_ms"] and r["bL_rps"] > 0
        assert r["b1_cpu_p50_ms"] > 0 and r["bL_cpu_rps"] > 0  # local: CPU time too
    with pytest.raises(ValueError, match="unknown backends"):
        bench_last(backends=("gpu",))


def test_each_distinct_candidate_slate_is_judged_once():
    """A repeated step size repeats its slate: the judge sees each distinct slate of a request
    once, and the repeat scores exactly as its first copy."""
    s = search(steps=(6.0, 6.0, 9.0), resamples=2)
    user, cand, ids = requests(8)
    seen = []

    def judge(u, items, item_ids):
        seen.append(len(u))
        with torch.no_grad():
            return trained_evaluator()(u, items, item_ids)

    s.judge = judge
    res = s.search(user, cand, ids)
    distinct = sum(len({tuple(c) for c in row}) for row in res.candidate_slates.tolist())
    assert sum(seen) == distinct < res.candidate_slates.shape[0] * res.candidate_slates.shape[1]
    np.testing.assert_array_equal(res.candidate_scores[:, 1], res.candidate_scores[:, 2])
