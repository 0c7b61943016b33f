"""Delayed clicks are joined to the slates they answer before anyone learns from them."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.agents.labels import FeedbackBuffer, LabelJoin
from driftrank.envs import ClickReports, Feedback, VectorRerankEnv

WORLD = dict(n_users=300, n_items=200)


def _batch(ids, k=3, reports=None):
    ids = np.asarray(ids, np.int64)
    return Feedback(request_id=ids, slates=np.zeros((ids.size, k), np.int64),
                    clicks=np.zeros((ids.size, k), np.float32), conversions=None,
                    reward=np.zeros(ids.size, np.float32), click_reports=reports)


def _reports(request_id, position):
    request_id, position = np.asarray(request_id, np.int64), np.asarray(position, np.int64)
    zeros = np.zeros_like(request_id)
    return ClickReports(request_id=request_id, row=zeros, user_id=zeros, item_id=zeros,
                        position=position, served_step=zeros, delay=zeros)


def test_a_batch_waits_for_its_delay_and_gets_the_clicks_reported_later():
    join = LabelJoin(delay=4)
    assert join.add(_batch([0, 1], reports=_reports([], [])), {"b": 0}) == []
    assert join.add(_batch([2, 3], reports=_reports([1, -7], [2, 0])), {"b": 1}) == []
    out = join.add(_batch([4, 5], reports=_reports([0, 3], [1, 0])), {"b": 2})
    assert [body["b"] for body, _ in out] == [0]  # 1 + 4 <= 5; batch 1 (3 + 4) still waits
    np.testing.assert_array_equal(out[0][1], [[0, 1, 0], [0, 0, 1]])  # a report per click
    assert join.waiting == 4
    out = join.add(_batch([6, 7], reports=_reports([], [])), {"b": 3})
    assert [body["b"] for body, _ in out] == [1]
    np.testing.assert_array_equal(out[0][1], [[0, 0, 0], [1, 0, 0]])


def test_without_a_delay_a_batch_is_released_at_once_and_hand_made_feedback_keeps_its_clicks():
    join = LabelJoin(delay=0)
    (body, clicks), = join.add(_batch([0, 1], reports=_reports([1], [2])), {"b": 0})
    np.testing.assert_array_equal(clicks, [[0, 0, 0], [0, 0, 1]])
    fb = _batch([2])
    fb.clicks[0, 1] = 1.0
    (_, clicks), = join.add(fb, {})
    np.testing.assert_array_equal(clicks, [[0, 1, 0]])
    with pytest.raises(ValueError, match="click delay"):
        LabelJoin(-1)


@pytest.mark.parametrize("delay", [0, 250])
def test_the_buffer_learns_from_the_clicks_users_made_not_the_zeros_of_a_late_step(delay):
    env = VectorRerankEnv(100, "stationary", **WORLD, click_delay=delay)
    obs, _ = env.reset(seed=1)
    buffer = FeedbackBuffer(delay, owner="test")
    rng = np.random.default_rng(0)
    made = []
    for _ in range(8):
        slates = np.argsort(rng.random((100, env.config.n_candidates)), 1)[:, :10]
        served = obs
        obs, reward, _, _, info = env.step(slates)
        made.append(info["truth"]["clicks"])
        buffer.add(Feedback.from_step(info, slates, reward, obs=served))
    data = buffer.take()
    released = data["clicks"].shape[0] // 100
    assert released == (8 if delay == 0 else 5)  # the last 3 batches' clicks are not all in
    np.testing.assert_array_equal(data["clicks"], np.concatenate(made[:released]))
    assert data["clicks"].sum() > 0
    assert buffer.take() is None
