"""Delayed conversions arrive after their delay, exactly once."""

from __future__ import annotations

import numpy as np

from driftrank.envs import make_config
from driftrank.envs.conversions import ConversionQueue
from driftrank.envs.world import World


def test_queue_pops_each_conversion_once_at_its_step():
    q = ConversionQueue()
    land = np.array([3, 1, 3, 2])
    fields = {name: np.arange(4) for name in
              ("request_id", "row", "user_id", "item_id", "position", "served_step", "delay")}
    q.push(land, **fields)
    assert len(q) == 4
    assert len(q.pop(0)) == 0
    assert q.pop(1).request_id.tolist() == [1]
    assert q.pop(2).request_id.tolist() == [3]
    assert sorted(q.pop(3).request_id.tolist()) == [0, 2]
    assert len(q.pop(3)) == 0 and len(q) == 0


def _run(batch: int, steps: int):
    config = make_config("stationary", n_users=300, n_items=200, conversion_delay="exponential",
                         conversion_delay_mean=20.0)
    world = World(config, batch, seed=5)
    landed, clicked = [], set()
    for step in range(steps):
        out = world.serve(world.reference_slates())
        rows, positions = np.nonzero(out["clicks"])
        clicked |= {(int(out["request_id"][r]), int(p)) for r, p in zip(rows, positions,
                                                                        strict=True)}
        c = out["conversions"]
        for i in range(len(c)):
            landed.append((step, int(c.request_id[i]), int(c.position[i]), int(c.delay[i]),
                           int(c.served_step[i]), int(c.row[i])))
    return landed, clicked, world


def test_conversions_land_after_their_delay_exactly_once_single_request():
    landed, clicked, world = _run(batch=1, steps=3000)
    assert len(landed) > 100
    keys = [(r, p) for _, r, p, *_ in landed]
    assert len(keys) == len(set(keys))  # exactly once
    assert set(keys) <= clicked  # only clicks convert
    for step, request, _, delay, served, _ in landed:
        assert step == request + delay  # B = 1: one tick per step
        assert served < step


def test_conversions_land_in_their_row_in_a_later_step_batched():
    batch = 8
    landed, clicked, world = _run(batch=batch, steps=400)
    keys = [(r, p) for _, r, p, *_ in landed]
    assert len(keys) == len(set(keys)) and set(keys) <= clicked
    for step, request, _, delay, served, row in landed:
        assert step == max(served + 1, (request + delay) // batch)
        assert request % batch == row
    # everything still pending is due later than now
    assert all(s > world.step_index - 1 for s in world.conversions._pending)


def test_reward_counts_landing_conversions_in_their_row():
    config = make_config("stationary", n_users=300, n_items=200, conversion_delay="exponential",
                         conversion_delay_mean=5.0, conversion_weight=10.0)
    world = World(config, 4, seed=0)
    for _ in range(300):
        out = world.serve(world.reference_slates())
        expected = out["clicks"].sum(axis=1) + 10.0 * np.bincount(
            out["conversions"].row, minlength=4)
        np.testing.assert_allclose(out["reward"], expected)
