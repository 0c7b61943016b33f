"""The compiled kernels of ``envs/kernels.py`` give numpy's numbers, bit for bit.

The numpy functions of ``envs/click_model.py`` (and the numpy formulations written out here)
are the specification; each kernel is checked against them on random batches with repeated
slots, empty slots and duplicate users, where gather-then-scatter and add-at semantics differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import click_model as cm
from driftrank.envs import kernels
from driftrank.envs.world import repeated_mask

B, N, K, T = 64, 30, 10, 7


@pytest.fixture
def batch():
    g = np.random.default_rng(3)
    slates = g.integers(0, N, size=(B, K))  # repeats: empty slots
    topics = g.integers(0, T, size=(B, N))
    attraction = g.random((B, N), dtype=np.float32)
    pconv = g.random((B, N), dtype=np.float32)
    exam = g.random((B, K), dtype=np.float32)
    return g, slates, topics, attraction, pconv, exam


def test_shown_mask_is_not_repeated(batch):
    _, slates, *_ = batch
    shown = np.empty(slates.shape, bool)
    kernels.shown_mask(slates, shown)
    np.testing.assert_array_equal(shown, ~repeated_mask(slates))
    assert not shown.all()  # the batch has repeats


@pytest.mark.parametrize("contrast, stop", [(0.2, 0.0), (0.0, 0.3), (0.5, 0.6)])
def test_slate_probs_equal_the_numpy_click_model(batch, contrast, stop):
    _, slates, topics, attraction, pconv, exam = batch
    shown = ~repeated_mask(slates)
    penalty = 0.7
    shown_topics = np.where(shown, cm.gather_rows(topics, slates), cm.EMPTY)
    want_cond = cm.slate_click_probs(exam, cm.gather_rows(attraction, slates), shown_topics,
                                     penalty, contrast)
    want_marg = cm.marginal_click_probs(want_cond, stop)
    p_cond, p_marg, conv = (np.empty((B, K), np.float32) for _ in range(3))
    slate_topics = np.empty((B, K), np.int64)
    kernels.slate_probs(slates, shown, topics, attraction, pconv, exam,
                        np.power(np.float32(penalty), np.arange(K + 1), dtype=np.float32),
                        np.float32(1 - contrast), np.float32(contrast), np.float32(stop),
                        slate_topics, p_cond, p_marg, conv)
    np.testing.assert_array_equal(slate_topics, shown_topics)
    np.testing.assert_array_equal(p_cond, want_cond)
    np.testing.assert_array_equal(p_marg, want_marg)
    np.testing.assert_array_equal(conv, cm.gather_rows(pconv, slates))


@pytest.mark.parametrize("stop", [0.0, 0.5])
def test_sample_clicks_equal_the_numpy_cascade(batch, stop):
    g, slates, _, _, pconv, _ = batch
    p = g.random((B, K), dtype=np.float32) * 0.6
    dice = g.random((3, B, K), dtype=np.float32)
    cands = g.integers(0, 500, size=(B, N))
    clicks, converted = np.empty((B, K), bool), np.empty((B, K), bool)
    slots = np.empty((B, K), np.int64)
    kernels.sample_clicks(p, cm.gather_rows(pconv, slates), dice, np.float32(stop), cands,
                          slates, clicks, converted, slots)
    want = cm.sample_clicks(p, stop, dice[0], dice[1])
    np.testing.assert_array_equal(clicks, want)
    np.testing.assert_array_equal(converted, want & (dice[2] < cm.gather_rows(pconv, slates)))
    np.testing.assert_array_equal(slots, cm.gather_rows(cands, slates))
    assert clicks.any() and not clicks.all()


def _greedy_numpy(value, topics, k, penalty, contrast):
    """The greedy reference loop as it was written in numpy (the specification)."""
    gain = value.astype(np.float64, copy=True)
    rows = np.arange(value.shape[0])
    slate = np.empty((value.shape[0], k), np.int64)
    lo, hi = 1.0 - 0.5 * contrast, 1.0
    prev = None
    for pos in range(k):
        g = gain if (contrast <= 0 or prev is None) else gain * np.where(
            topics == prev[:, None], lo, hi)
        best = g.argmax(axis=1)
        slate[:, pos] = best
        prev = topics[rows, best]
        gain[rows, best] = -np.inf
        gain *= np.where(topics == prev[:, None], penalty, 1.0)
    return slate


@pytest.mark.parametrize("contrast", [0.0, 0.4])
def test_greedy_reference_equals_the_numpy_loop(batch, contrast):
    _, _, topics, attraction, *_ = batch
    value = np.round(attraction, 2)  # ties: the first maximum must win, as argmax's
    slate = np.empty((B, K), np.int64)
    kernels.greedy_slates(value, topics, K, 0.5, contrast, 1.0 - 0.5 * contrast, 1.0, slate)
    np.testing.assert_array_equal(slate, _greedy_numpy(value, topics, K, 0.5, contrast))


def test_pairwise_sum_is_numpys():
    g = np.random.default_rng(0)
    for n in (1, 5, 7, 8, 9, 16, 20, 33, 128):
        rows = g.random((50, n), dtype=np.float32) * 10
        got = np.array([kernels._pairwise_sum(r) for r in rows])
        np.testing.assert_array_equal(got, rows.sum(axis=1))


def test_visit_update_reads_before_it_writes_duplicates():
    g = np.random.default_rng(1)
    users = np.array([3, 1, 3, 0, 3])  # user 3 three times: the last row wins
    ticks = np.arange(10, 15)
    taste = g.standard_normal((5, 4)).astype(np.float32)
    history = g.random((5, T), dtype=np.float32)
    boredom = g.random((5, T), dtype=np.float32)
    keep = g.random(5, dtype=np.float32)
    z = g.standard_normal((5, 4)).astype(np.float32)
    decay_h, decay_b = g.random(5, dtype=np.float32), g.random(5, dtype=np.float32)
    offset = g.standard_normal(4).astype(np.float32)
    want_taste, want_hist, want_bored = taste.copy(), history.copy(), boredom.copy()
    want_taste[users] = keep[:, None] * taste[users] + np.sqrt(1 - keep * keep)[:, None] * (
        z / np.float32(2.0))
    want_hist[users] *= decay_h[:, None]
    want_bored[users] *= decay_b[:, None]
    last_seen = np.zeros(5, np.int64)
    u_eff = np.empty((5, 4), np.float32)
    kernels.visit_update(users, ticks, last_seen, keep, z, np.float32(2.0), decay_b, decay_h,
                         taste, boredom, history, offset, u_eff)
    np.testing.assert_array_equal(taste, want_taste)
    np.testing.assert_array_equal(history, want_hist)
    np.testing.assert_array_equal(boredom, want_bored)
    np.testing.assert_array_equal(u_eff, want_taste[users] + offset)
    assert last_seen[3] == 14 and last_seen[2] == 0
