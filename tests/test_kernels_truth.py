"""The truth kernels (value per click, expected rewards, the shortlisted greedy reference) give
numpy's numbers bit for bit; the numpy formulations they replaced are the specification."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import click_model as cm
from driftrank.envs import kernels


@pytest.mark.parametrize("k", [1, 5, 8, 10, 16, 33, 128])
def test_expected_rewards_are_numpys_float32_pairwise_sums(k):
    g = np.random.default_rng(k)
    p = g.random((40, k), dtype=np.float32)
    pconv = g.random((40, k), dtype=np.float32)
    weight = 0.37  # a Python float next to float32 arrays: numpy computes in float32
    out = np.empty(40, np.float32)
    kernels.expected_rewards(p, pconv, np.float32(weight), out)
    np.testing.assert_array_equal(out, (p * (1.0 + weight * pconv)).sum(axis=1))
    value = np.empty((40, k), np.float32)
    kernels.value_per_click(p, pconv, np.float32(weight), value)
    np.testing.assert_array_equal(value, p * (1.0 + weight * pconv))


def _greedy_reference_before(value, topics, k, penalty, contrast, short):
    """``click_model.greedy_reference`` as it was: shortlist gathered in numpy around the
    greedy kernel (the specification)."""
    n = value.shape[1]
    keep = np.argpartition(-value, short - 1, axis=1)[:, :short] if short < n else None
    if keep is not None:
        value, topics = cm.gather_rows(value, keep), cm.gather_rows(topics, keep)
    slate = np.empty((value.shape[0], k), np.int64)
    kernels.greedy_slates(np.ascontiguousarray(value), np.ascontiguousarray(topics), k,
                          penalty, contrast, 1.0 - 0.5 * contrast, 1.0, slate)
    return cm.gather_rows(keep, slate) if keep is not None else slate


@pytest.mark.parametrize("short, contrast", [(12, 0.0), (12, 0.3), (30, 0.3)])
def test_greedy_reference_equals_gathering_around_the_greedy_loop(short, contrast):
    g = np.random.default_rng(2)
    b, n, k = 50, 30, 4
    value = np.round(g.random((b, n), dtype=np.float32), 2)  # ties: the first maximum wins
    topics = g.integers(0, 5, size=(b, n))
    want = _greedy_reference_before(value, topics, k, 0.5, contrast, short)
    got = cm.greedy_reference(value, topics, k, 0.5, contrast, shortlist=short)
    np.testing.assert_array_equal(got, want)
    assert (got != np.arange(k)).any()
