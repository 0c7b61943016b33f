"""Model-adaptation mechanisms (adapt/adapters.py, adapt/film.py, adapt/meta.py) on small
synthetic tasks: each is checked where it can fail."""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
import pytest
import torch
from synthetic import SyntheticWorld

from driftrank.adapt.adapters import BottleneckAdapter, adapt_evaluator, adapt_generator
from driftrank.adapt.film import FiLM, ResidualSummary, film_model, modulate, set_summary
from driftrank.adapt.meta import FastWeights, inner_adapt, meta_train, query_loss, with_clicks
from driftrank.adapt.patches import EVALUATOR_SITE, GENERATOR_SITE, PatchedModel
from driftrank.evaluator import (
    EvaluatorConfig,
    ListwiseEvaluator,
    evaluate_logged,
    gather_slate,
    predict_logged,
    train_evaluator,
)
from driftrank.generator import GeneratorConfig, SlateGenerator, train_imitation

torch.set_num_threads(1)


@lru_cache(maxsize=1)
def world() -> SyntheticWorld:
    return SyntheticWorld()


def data(n=600, seed=1, shifted=False) -> dict:
    """Synthetic requests; ``shifted``: every label inverted (a task the base gets wrong)."""
    batch = world().sample(n, seed=seed)[0]
    if shifted:
        batch["clicks"] = 1.0 - batch["clicks"]
    return batch


@lru_cache(maxsize=1)
def _base_state() -> tuple[EvaluatorConfig, dict]:
    c = world().config
    config = EvaluatorConfig(c.user_dim, c.item_dim, c.slate_size, hidden=16)
    model = ListwiseEvaluator(config)
    train_evaluator(model, data(800, seed=0), epochs=1, batch_size=128, seed=0)
    return config, model.state_dict()


def base_evaluator() -> ListwiseEvaluator:
    config, state = _base_state()
    model = ListwiseEvaluator(config)
    model.load_state_dict(state)
    return model.eval()


def base_generator(hidden=16, seed=0, user_dim=None, item_dim=None) -> SlateGenerator:
    c = world().config
    return SlateGenerator(GeneratorConfig(user_dim or c.user_dim, item_dim or c.item_dim,
                                          c.slate_size, hidden=hidden, seed=seed)).eval()


def slate_args(batch):
    items, ids = gather_slate(torch.as_tensor(batch["candidates"]),
                              torch.as_tensor(batch["candidate_ids"]),
                              torch.as_tensor(batch["slates"]))
    return torch.as_tensor(batch["user"]), items, ids


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ adapters
def test_zero_initialised_adapter_is_the_identity_and_a_nonzero_one_is_not():
    h = torch.randn(4, 5, 16)
    adapter = BottleneckAdapter(16, 4, seed=3)
    assert torch.equal(adapter(h), h)
    torch.nn.init.normal_(adapter.up.weight)
    assert not torch.allclose(adapter(h), h)


def test_patched_models_serve_exactly_the_base_before_training():
    batch = data(64, seed=5)
    ev_plain = base_evaluator()
    ev_patched = adapt_evaluator(base_evaluator(), bottleneck=4, seed=1)
    with torch.no_grad():
        assert torch.equal(ev_patched(*slate_args(batch)), ev_plain(*slate_args(batch)))
    g_plain = base_generator()
    g_patched = adapt_generator(base_generator(), bottleneck=4, seed=1)
    x = (batch["user"], batch["candidates"], batch["candidate_ids"])
    with torch.no_grad():
        assert torch.equal(g_patched.greedy(*x), g_plain.greedy(*x))
        assert torch.equal(g_patched.log_prob(*x, batch["slates"]),
                           g_plain.log_prob(*x, batch["slates"]))


def test_adapter_learns_a_shifted_task_while_the_base_stays_bit_identical():
    shifted, held = data(600, seed=1, shifted=True), data(300, seed=2, shifted=True)
    model = adapt_evaluator(base_evaluator(), bottleneck=8, seed=0)
    frozen = copy.deepcopy(model.base.state_dict())
    before = evaluate_logged(model, held)["logloss"]
    train_evaluator(model, shifted, epochs=3, batch_size=64, lr=1e-2, seed=0)
    after = evaluate_logged(model, held)["logloss"]
    assert after < before - 0.2, (before, after)
    assert same_weights(model.base.state_dict(), frozen)
    with model.patches_off():  # the base alone is still the old model
        np.testing.assert_array_equal(predict_logged(model, held),
                                      predict_logged(base_evaluator(), held))

    gen = adapt_generator(base_generator(), bottleneck=8, seed=0)
    g_frozen = copy.deepcopy(gen.base.state_dict())
    adapter_before = copy.deepcopy(gen.patches.state_dict())
    train_imitation(gen, shifted, epochs=1, batch_size=64, seed=0)
    assert same_weights(gen.base.state_dict(), g_frozen)
    assert not same_weights(gen.patches.state_dict(), adapter_before)


def test_patching_an_unknown_site_names_the_valid_ones():
    with pytest.raises(ValueError, match="no sub-module 'nope'.*valid"):
        PatchedModel(base_evaluator(), {"nope": BottleneckAdapter(16)})


# ------------------------------------------------------------------------------ FiLM
def test_film_with_scale_one_and_shift_zero_is_the_identity():
    h = torch.randn(3, 7, 16)
    assert torch.equal(modulate(h, torch.ones(3, 16), torch.zeros(3, 16)), h)
    gamma, beta = torch.full((3, 16), 2.0), torch.full((3, 16), -1.0)
    assert torch.equal(modulate(h, gamma, beta), 2.0 * h - 1.0)
    film = FiLM(16, cond_dim=5, seed=0)  # untrained: gamma(c) = 1, beta(c) = 0 for any c
    assert torch.equal(film(h, torch.randn(3, 5)), h)


def test_film_patched_models_match_the_base_until_trained_whatever_the_summary():
    batch = data(64, seed=5)
    ev_patched = film_model(base_evaluator(), EVALUATOR_SITE, summary_dim=6, seed=0)
    set_summary(ev_patched, np.linspace(-1, 1, 6))
    with torch.no_grad():
        assert torch.equal(ev_patched(*slate_args(batch)), base_evaluator()(*slate_args(batch)))
    g_patched = film_model(base_generator(), GENERATOR_SITE, summary_dim=6, seed=0)
    x = (batch["user"], batch["candidates"], batch["candidate_ids"])
    with torch.no_grad():
        assert torch.equal(g_patched.greedy(*x), base_generator().greedy(*x))


def test_trained_film_moves_predictions_towards_the_labels_per_request():
    """Labels depend on a user feature the base never saw them depend on: after training,
    predictions rise for the users labelled 1 and fall for those labelled 0."""
    batch = data(600, seed=1)
    positive = batch["user"][:, 0] > 0
    batch["clicks"] = np.repeat(positive[:, None], batch["clicks"].shape[1], 1).astype(np.float32)
    model = film_model(base_evaluator(), EVALUATOR_SITE, summary_dim=4, seed=0)
    frozen = copy.deepcopy(model.base.state_dict())
    before = predict_logged(model, batch).mean(axis=1)
    train_evaluator(model, batch, epochs=3, batch_size=64, lr=3e-3, seed=0)
    after = predict_logged(model, batch).mean(axis=1)
    move = after - before
    assert move[positive].mean() > 0.1 and move[~positive].mean() < -0.02, (
        move[positive].mean(), move[~positive].mean())
    assert same_weights(model.base.state_dict(), frozen)


def test_residual_summary_is_the_decayed_mean_residual_per_topic():
    s = ResidualSummary(3, half_life=1.0, scale=1.0)
    items = np.zeros((2, 2, 3))
    items[:, :, 0] = 1.0  # every item has topic 0
    items[0, 0, 1] = 1.0  # one item has topic 1
    s.update(np.array([[0.5, 0.1], [0.1, 0.1]]), items)
    np.testing.assert_allclose(s.value(), [0.2, 0.5, 0.0])
    s.update(np.full((2, 2), -0.4), items)  # a new batch of 2 requests: old weight 0.5**2
    expected0 = (0.25 * 0.8 - 1.6) / (0.25 * 4 + 4)
    np.testing.assert_allclose(s.value()[0], expected0, rtol=1e-6)


# ------------------------------------------------------------------------------ MAML
ITEM_DIM, USER_DIM, N_CAND, K = 8, 4, 6, 6
INNER_LR = 30.0


def task_family(n_tasks: int, per_task: int, seed: int) -> dict:
    """Each task (user) clicks the 2 items its hidden preference vector likes best; the user
    input is noise, so only the task's own feedback says what it likes."""
    rng = np.random.default_rng(seed)
    prefs = rng.normal(size=(n_tasks, ITEM_DIM))
    n = n_tasks * per_task
    cand = rng.normal(size=(n, N_CAND, ITEM_DIM)).astype(np.float32)
    slates = np.argsort(rng.random((n, N_CAND)), axis=1)[:, :K]
    user_id = np.repeat(np.arange(n_tasks), per_task)
    score = np.einsum("rkf,rf->rk", np.take_along_axis(cand, slates[..., None], 1),
                      prefs[user_id])
    clicks = np.zeros((n, K), np.float32)
    np.put_along_axis(clicks, np.argsort(-score, axis=1)[:, :2], 1.0, axis=1)
    return {"user": rng.normal(size=(n, USER_DIM)).astype(np.float32), "candidates": cand,
            "candidate_ids": np.zeros((n, N_CAND), np.int64), "slates": slates,
            "clicks": clicks, "user_id": user_id}


def maml_generator(seed=0) -> SlateGenerator:
    g = SlateGenerator(GeneratorConfig(USER_DIM, ITEM_DIM, K, hidden=16, use_ids=False,
                                       seed=seed))
    train_imitation(g, task_family(200, 4, seed=0), epochs=2, batch_size=64, seed=0)
    return g.eval()


def _support_query(tasks: dict, support: int):
    from driftrank.adapt.meta import _tensors
    clicked = with_clicks(tasks)
    per = np.bincount(clicked["user_id"])[0]
    rows = np.arange(len(clicked["user_id"]))
    is_support = (rows % per) < support
    task = torch.as_tensor(clicked["user_id"])
    return (_tensors(clicked, rows[is_support]), task[is_support],
            _tensors(clicked, rows[~is_support]), task[~is_support])


def test_the_inner_step_lowers_the_support_loss_and_leaves_the_generator_alone():
    g = maml_generator()
    frozen = copy.deepcopy(g.state_dict())
    sup, s_task, _, _ = _support_query(task_family(16, 4, seed=9), support=2)
    zero = torch.zeros(16, 16)
    with torch.no_grad():
        loss0 = float(query_loss(g, sup, s_task, zero))
    delta = inner_adapt(g, sup, s_task, zero, steps=3, lr=INNER_LR)
    with torch.no_grad():
        loss3 = float(query_loss(g, sup, s_task, delta))
    assert loss3 < loss0 - 0.02, (loss0, loss3)
    assert same_weights(g.state_dict(), frozen)


def test_the_meta_trained_init_adapts_faster_than_the_pretrained_one():
    pretrained = maml_generator()
    meta = copy.deepcopy(pretrained)
    # fresh tasks (each seen about once): with few tasks, meta-training memorises their rows
    out = meta_train(meta, task_family(2400, 4, seed=1), steps=150, tasks_per_step=16,
                     support=2, query=2, inner_steps=3, inner_lr=INNER_LR, outer_lr=3e-3,
                     seed=0)
    assert out["n_tasks"] == 2400
    sup, s_task, qry, q_task = _support_query(task_family(40, 4, seed=2), support=2)
    losses = {}
    for name, g in (("pretrained", pretrained), ("meta", meta)):
        delta = inner_adapt(g, sup, s_task, torch.zeros(40, 16), steps=3, lr=INNER_LR)
        with torch.no_grad():
            losses[name] = float(query_loss(g, qry, q_task, delta))
    assert losses["meta"] < losses["pretrained"] - 0.05, losses


def test_fast_weights_start_at_zero_and_move_only_the_users_who_clicked():
    g = maml_generator()
    fast = FastWeights(16, steps=2, lr=INNER_LR)
    tasks = task_family(3, 1, seed=4)
    tasks["clicks"][2] = 0.0  # user 2 clicked nothing
    assert torch.equal(fast.rows(np.array([0, 1, 2])), torch.zeros(3, 16))
    assert fast.adapt(g, tasks) == 2
    rows = fast.rows(np.array([0, 1, 2, 7]))
    assert rows[0].abs().sum() > 0 and rows[1].abs().sum() > 0
    assert torch.equal(rows[2], torch.zeros(16)) and torch.equal(rows[3], torch.zeros(16))
