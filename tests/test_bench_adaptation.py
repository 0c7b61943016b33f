"""The model-adaptation benchmark's reward table: shares of the headroom whose answers are known
(``static`` has none of it by definition, ``oracle`` serves the reference slate, so all of it),
and its agent specs."""

from __future__ import annotations

import pytest

from driftrank.experiments.bench_adaptation import agent_entry, bench_reward

WORLD = {"n_users": 300, "n_items": 300, "abrupt_times": (600,)}
TINY = {"pretrain_config": dict(n_requests=800, evaluator_epochs=1, imitation_epochs=1,
                                pg_steps=3, eval_requests=50)}


def test_headroom_shares_are_zero_for_static_and_one_for_the_oracle(tmp_path):
    out = bench_reward([("static", TINY), "oracle", "random"], "abrupt-shift", seeds=(0, 1),
                       requests=1_200, batch=100, window=200, cache_dir=tmp_path, world=WORLD)
    out["label"] = out["label"].str.replace(r"^static\(.*", "static", regex=True)
    share = out.set_index(["label", "phase"])
    assert set(out["phase"]) == {"before", "after"}
    for phase in ("before", "after"):
        assert share.loc[("static", phase), "headroom_share"] == 0.0
        assert share.loc[("oracle", phase), "headroom_share"] == pytest.approx(1.0)
        row = share.loc[("random", phase)]
        assert row["share_min"] <= row["headroom_share"] <= row["share_max"]
        assert row["share_min"] < row["share_max"]  # two seeds, two different shares
        assert row["seeds"] == 2


def test_agent_specs_carry_configs_and_bad_ones_say_how():
    assert agent_entry("static") == "static"
    assert agent_entry("maml:fast_adaptation=false,inner_steps=2") == (
        "maml", {"fast_adaptation": False, "inner_steps": 2})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        agent_entry("maml:fast_adaptation")
    with pytest.raises(ValueError, match="NAME:KEY=VALUE"):
        agent_entry(":x=1")


def test_the_reward_table_needs_static():
    with pytest.raises(ValueError, match="list 'static'"):
        bench_reward(["random"], "abrupt-shift", seeds=(0,), requests=200, batch=100)
