"""Behaviour of the list-wise evaluator: it must learn the synthetic world's click model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest_models import (
    evaluator_config,
    heldout_data,
    slate_inputs,
    train_data,
    trained_evaluator,
    world,
)
from synthetic import SyntheticTruth

from driftrank.evaluator import (
    CheckpointError,
    EvaluatorConfig,
    ListwiseEvaluator,
    auc,
    bce,
    load,
    log_loss,
    predict_logged,
    reloop_loss,
    save,
    self_correction,
    spearman,
    train_evaluator,
)

torch.set_num_threads(1)


def _small_batch(b=4, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = world().config
    return (
        torch.randn(b, c.user_dim, generator=g),
        torch.randn(b, k, c.item_dim, generator=g),
        torch.randint(0, 10**12, (b, k), generator=g),
    )


# -- learning -------------------------------------------------------------------------------------


def test_beats_position_only_baseline_on_heldout_auc():
    batch, _ = heldout_data()
    ctr = train_data()["clicks"].mean(axis=0)
    base = auc(batch["clicks"], np.broadcast_to(ctr, batch["clicks"].shape))
    model_auc = auc(batch["clicks"], predict_logged(trained_evaluator(), batch))
    assert model_auc > base + 0.03, (model_auc, base)


def _permutation_spearman(model, n_perm=12, seed=0):
    batch, truth = heldout_data()
    r, k = batch["slates"].shape
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(k) for _ in range(r * n_perm)]).reshape(r, n_perm, k)
    slates = np.take_along_axis(batch["slates"][:, None, :].repeat(n_perm, 1), order, axis=2)
    flat = slates.reshape(r * n_perm, k)
    rep_truth = SyntheticTruth(
        truth.attraction_logit.repeat(n_perm, 0), truth.topics.repeat(n_perm, 0)
    )
    true_score = world().expected_clicks(rep_truth, flat).reshape(r, n_perm)
    rep = {key: np.repeat(batch[key], n_perm, axis=0) for key in ("user", "candidates",
                                                                   "candidate_ids")}
    with torch.no_grad():
        score = model.score(*slate_inputs(rep, flat)).numpy().reshape(r, n_perm)
    return float(np.nanmean([spearman(a, b) for a, b in zip(score, true_score, strict=True)]))


def test_list_score_ranks_permutations_like_the_truth():
    trained = _permutation_spearman(trained_evaluator())
    untrained = _permutation_spearman(ListwiseEvaluator(evaluator_config()).eval())
    assert trained > 0.3, trained
    assert abs(untrained) < 0.2, untrained  # the check itself cannot be passed by chance


def test_learns_that_a_same_topic_item_above_dampens_clicks():
    """Same items, only the order differs: X at position 1 below a same-topic item Y (A) or
    with Y moved to the bottom (C). The truth penalises X only in A; so must the model."""
    batch, truth = heldout_data()
    rng = np.random.default_rng(0)
    a_sl, c_sl, rows = [], [], []
    n = truth.topics.shape[1]
    for r in range(len(batch["user"])):
        top = truth.topics[r]
        x = rng.integers(n)
        same = np.flatnonzero((top == top[x]) & (np.arange(n) != x))
        other = np.flatnonzero(top != top[x])
        if len(same) == 0 or len(other) < 8:
            continue
        y = rng.choice(same)
        z, *rest = rng.choice(other, 8, replace=False)
        a_sl.append([y, x, *rest, z])
        c_sl.append([z, x, *rest, y])
        rows.append(r)
    assert len(rows) > 200
    sub = {k: v[rows] for k, v in batch.items()}
    sub_truth = SyntheticTruth(truth.attraction_logit[rows], truth.topics[rows])
    true_gap = world().click_probs(sub_truth, np.array(c_sl))[:, 1] - world().click_probs(
        sub_truth, np.array(a_sl))[:, 1]
    assert (true_gap > 0).all()
    model = trained_evaluator()
    with torch.no_grad():
        gap = (model.logits(*slate_inputs(sub, c_sl))[:, 1]
               - model.logits(*slate_inputs(sub, a_sl))[:, 1]).numpy()
    assert gap.mean() > 0.2 and (gap > 0).mean() > 0.7, (gap.mean(), (gap > 0).mean())


def test_order_matters_for_per_position_predictions():
    model = ListwiseEvaluator(evaluator_config()).eval()
    user, items, ids = _small_batch()
    perm = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 9, 8])  # only the last two swap
    with torch.no_grad():
        p = model(user, items, ids)
        q = model(user, items[:, perm], ids[:, perm])
        rev = model(user, items.flip(1), ids.flip(1))
    # the untouched top positions still see a different context below them
    assert not torch.allclose(p[:, :8], q[:, :8])
    # the same item at another position gets another prediction
    assert not torch.allclose(p, rev.flip(1))


def test_training_is_seeded_and_uses_dropout_reproducibly():
    data = {k: v[:300] for k, v in train_data().items()}
    models = []
    for _ in range(2):
        m = ListwiseEvaluator(evaluator_config(dropout=0.1, seed=3))
        train_evaluator(m, data, epochs=1, batch_size=64, seed=7, reloop_alpha=0.3)
        models.append(m)
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    other = ListwiseEvaluator(evaluator_config(dropout=0.1, seed=4))
    assert not torch.equal(other.out.weight, ListwiseEvaluator(
        evaluator_config(dropout=0.1, seed=3)).out.weight)


def test_train_reports_metrics_and_loss_falls():
    data = {k: v[:1000] for k, v in train_data().items()}
    m = ListwiseEvaluator(evaluator_config())
    out = train_evaluator(m, data, epochs=3, batch_size=128, seed=0, valid=heldout_data()[0])
    assert len(out["loss"]) == 3 and out["loss"][-1] < out["loss"][0]
    assert 0.5 < out["valid_auc"] <= 1 and np.isfinite(out["valid_logloss"])


# -- API ------------------------------------------------------------------------------------------


def test_shapes_hidden_predict_and_weighted_score():
    model = ListwiseEvaluator(evaluator_config()).eval()
    user, items, ids = _small_batch(b=3)
    with torch.no_grad():
        probs = model(user, items, ids)
        hid = model.hidden(user, items, ids)
        p2, h2 = model.predict(user, items, ids)
        w = torch.linspace(1.0, 0.1, 10)
        s = model.score(user, items, ids, weights=w)
    assert probs.shape == (3, 10) and hid.shape == (3, 10, 32)
    assert ((probs > 0) & (probs < 1)).all()
    assert torch.equal(probs, p2) and torch.equal(hid, h2)
    assert torch.allclose(s, (probs * w).sum(1))
    assert torch.allclose(model.score(user, items, ids), probs.sum(1))
    assert torch.allclose(torch.sigmoid(model.logits(user, items, ids)), probs)
    # a truncated slate (fewer positions) is fine
    assert model(user, items[:, :4], ids[:, :4]).shape == (3, 4)


def test_ids_are_hashed_and_optional():
    model = ListwiseEvaluator(evaluator_config()).eval()
    user, items, ids = _small_batch()
    with torch.no_grad():
        a = model(user, items, ids)
        b = model(user, items, ids + 4096)  # same bucket
        c = model(user, items, ids + 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    no_ids = ListwiseEvaluator(evaluator_config(use_ids=False)).eval()
    assert no_ids(user, items, None).shape == (4, 10)
    with pytest.raises(ValueError, match="item_ids"):
        model(user, items, None)


def test_bad_inputs_and_configs_raise_clear_errors():
    model = ListwiseEvaluator(evaluator_config())
    user, items, ids = _small_batch()
    with pytest.raises(ValueError, match="user must be"):
        model(user[:, :5], items, ids)
    with pytest.raises(ValueError, match="positions"):
        model(user, torch.cat([items, items], 1), torch.cat([ids, ids], 1))
    with pytest.raises(ValueError, match="divisible"):
        EvaluatorConfig(30, 32, 10, hidden=64, heads=3)
    with pytest.raises(ValueError, match="missing"):
        train_evaluator(model, {"user": np.zeros((2, 30))}, epochs=1)


# -- losses and metrics ---------------------------------------------------------------------------


def test_reloop_loss_matches_equation_on_hand_made_tensors():
    y_hat = torch.tensor([0.2, 0.9, 0.6, 0.3])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    y_last = torch.tensor([0.5, 0.7, 0.4, 0.5])
    # sc: y=1 -> max(last - hat, 0): 0.3, 0; y=0 -> max(hat - last, 0): 0.2, 0
    sc = (0.3 + 0.0 + 0.2 + 0.0) / 4
    ce = -(np.log(0.2) + np.log(0.9) + np.log(0.4) + np.log(0.7)) / 4
    for alpha in (0.0, 0.25, 1.0):
        got = float(reloop_loss(y_hat, y, y_last, alpha))
        assert got == pytest.approx(alpha * sc + (1 - alpha) * ce, rel=1e-5)
    assert torch.equal(reloop_loss(y_hat, y, None, 0.0), bce(y_hat, y))
    with pytest.raises(ValueError, match="y_last"):
        reloop_loss(y_hat, y, None, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        reloop_loss(y_hat, y, y_last, 1.5)


def test_reloop_gradient_only_reaches_the_new_predictions():
    y_hat = torch.tensor([0.2, 0.6], requires_grad=True)
    y_last = torch.tensor([0.5, 0.4], requires_grad=True)
    reloop_loss(y_hat, torch.tensor([1.0, 0.0]), y_last, 1.0).backward()
    assert y_last.grad is None
    assert torch.allclose(y_hat.grad, torch.tensor([-0.5, 0.5]))


def test_auc_rank_based_with_ties():
    assert auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    assert auc([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2]) == 0.0
    assert auc([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(auc([1, 1], [0.2, 0.3]))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 5, 300).astype(float)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg))
    assert auc(y, s) == pytest.approx(brute)


def test_log_loss_and_spearman():
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert log_loss([1], [0.0]) < 20  # clipped, finite
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


# -- checkpoints ----------------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = trained_evaluator()
    save(model, model.config, tmp_path / "ev")
    loaded = load(tmp_path / "ev")
    assert loaded.config == model.config and not loaded.training
    user, items, ids = _small_batch()
    with torch.no_grad():
        assert torch.equal(model(user, items, ids), loaded(user, items, ids))
        assert torch.equal(model.hidden(user, items, ids), loaded.hidden(user, items, ids))


def test_corrupt_or_mismatched_checkpoint_raises_clear_error(tmp_path):
    model = ListwiseEvaluator(evaluator_config())
    d = save(model, model.config, tmp_path / "ev")
    state = d / "model.pt"
    raw = state.read_bytes()
    state.write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(CheckpointError,
                       match=r"model\.pt.*pretraining cache, run the command again"):
        load(d)

    d2 = save(model, model.config, tmp_path / "ev2")
    meta = json.loads((d2 / "config.json").read_text())
    meta["config"]["hidden"] = 16  # config no longer matches the stored weights
    (d2 / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match the config"):
        load(d2)

    (d2 / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json is corrupt"):
        load(d2)
    with pytest.raises(CheckpointError, match="missing"):
        load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="differs"):
        save(model, evaluator_config(hidden=16), tmp_path / "ev3")


def test_reloop_term_changes_training_against_plain_bce():
    # the same start, data and seed: with alpha > 0 the update is pulled toward not being worse
    # than the previous version on each sample, so it ends with a smaller self-correction
    # loss against that version than the plain-BCE update does, and with other weights
    import copy

    start = trained_evaluator()
    data = {k: np.asarray(v)[:1500] for k, v in train_data().items()}
    shifted = dict(data, clicks=1.0 - np.asarray(data["clicks"]))  # a world that flipped
    out = {}
    for alpha in (0.0, 0.7):
        model = copy.deepcopy(start)
        train_evaluator(model, shifted, epochs=1, batch_size=128, lr=3e-3, seed=3,
                        reloop_alpha=alpha, previous=start)
        p_new = torch.as_tensor(predict_logged(model, shifted))
        p_old = torch.as_tensor(predict_logged(start, shifted))
        y = torch.as_tensor(np.asarray(shifted["clicks"]), dtype=torch.float32)
        out[alpha] = (model, float(self_correction(p_new, y, p_old)))
    plain, corrected = out[0.0][0].state_dict(), out[0.7][0].state_dict()
    assert any(not torch.equal(plain[k], corrected[k]) for k in plain)
    assert out[0.7][1] < out[0.0][1], (out[0.7][1], out[0.0][1])


def test_trains_after_judging_in_inference_mode():
    """The judge runs the evaluator in inference mode; what it caches there (the pairwise
    masks) must not leak inference tensors into a later training step."""
    model = ListwiseEvaluator(EvaluatorConfig(user_dim=4, item_dim=3, slate_size=5, hidden=8,
                                              use_ids=False))
    user, items = torch.randn(2, 4), torch.randn(2, 5, 3)
    with torch.inference_mode():
        model.eval()(user, items)
    model.train()(user, items).sum().backward()
    assert model.pair_proj.weight.grad is not None
