"""The label kernels (conversion delays, label tables, the queue's order) give numpy's numbers.

The numpy formulations (``conversions.conversion_delays`` and the queueing written out here as
``World`` did it before the kernels) are the specification, checked on dice that straddle the
fast/slow threshold and the attribution window, and on batches whose labels land in several
steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import kernels, make_config
from driftrank.envs.conversions import (
    FAST_MEAN_HOURS,
    FAST_SHARE,
    SLOW_MEAN_HOURS,
    ConversionQueue,
    conversion_delays,
)
from driftrank.envs.types import FIELDS


def _settings(c):
    return (c.conversion_delay == "realistic", np.float32(FAST_SHARE), FAST_MEAN_HOURS,
            SLOW_MEAN_HOURS, float(c.ticks_per_hour), float(c.conversion_window_hours),
            np.float32(c.conversion_delay_mean))


@pytest.mark.parametrize("over", [dict(), dict(ticks_per_hour=100, conversion_window_hours=3.0),
                                  dict(conversion_delay="exponential",
                                       conversion_delay_mean=37.3)])
def test_conversion_delays_equal_the_numpy_formula(over):
    c = make_config("stationary", **over)
    g = np.random.default_rng(0)
    shape = (2000, 10)
    u_mix = g.random(shape, dtype=np.float32)
    # uniforms around the float32 threshold, where a float64 comparison would disagree
    near = np.nextafter(np.float32(FAST_SHARE), np.float32(1.0))
    u_mix[:3, :3] = [[FAST_SHARE, near, np.nextafter(np.float32(FAST_SHARE), np.float32(0))]]
    expo = g.standard_exponential(shape, dtype=np.float32)
    converted = g.random(shape) < 0.5
    want = conversion_delays(c, u_mix, expo)
    delays = np.zeros(shape, np.int64)
    mask = converted.copy()
    n = kernels.conversion_delays(mask, u_mix, expo, *_settings(c), delays)
    np.testing.assert_array_equal(mask, converted & (want > 0))
    np.testing.assert_array_equal(delays[mask], want[mask])
    assert n == mask.sum()
    if "conversion_window_hours" in over:
        assert (converted & (want < 0)).any()  # the window cut some


def _queue_numpy(mask, delays, request_ids, users, user_ids, item_ids, step, b):
    """``World._queue`` as numpy wrote it (the specification)."""
    rows, positions = np.nonzero(mask)
    delay = delays[rows, positions].astype(np.int64)
    land = np.maximum(step + 1, (request_ids[rows] + delay) // b)
    q = ConversionQueue()
    q.push(land, request_id=request_ids[rows], row=rows, user_id=user_ids[users[rows]],
           item_id=item_ids[rows, positions], position=positions,
           served_step=np.full(rows.size, step), delay=delay)
    return q


def test_queued_labels_land_as_the_numpy_queue_put_them():
    g = np.random.default_rng(1)
    b, k, step = 16, 10, 7
    mask = g.random((b, k)) < 0.3
    delays = g.integers(1, 60, size=(b, k))
    request_ids = step * b + np.arange(b)
    users = g.integers(0, 50, size=b)
    user_ids = g.permutation(1000)[:50]
    item_ids = g.integers(0, 10_000, size=(b, k))
    land, table = kernels.queued_labels(mask, delays, request_ids, users, user_ids, item_ids,
                                        step, b)
    assert np.all(np.diff(land) >= 0) and len(set(land.tolist())) > 2
    got = ConversionQueue()
    got.push_sorted(land, table)
    want = _queue_numpy(mask, delays, request_ids, users, user_ids, item_ids, step, b)
    assert len(got) == len(want) == mask.sum()
    for s in range(step, int(land.max()) + 2):
        a, w = got.pop(s), want.pop(s)
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(w, name), err_msg=name)
            assert getattr(a, name).dtype == np.int64


def test_label_table_without_delays_lists_the_clicks_row_major():
    clicks = np.array([[False, True, True], [True, False, False]])
    table = kernels.label_table(clicks, np.zeros((0, 0), np.int64), np.array([40, 41]),
                                np.array([1, 0]), np.array([100, 101]),
                                np.array([[7, 8, 9], [4, 5, 6]]), 3)
    np.testing.assert_array_equal(table, [[40, 40, 41], [0, 0, 1], [101, 101, 100],
                                          [8, 9, 4], [1, 2, 0], [3, 3, 3], [0, 0, 0]])
