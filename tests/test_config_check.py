"""Agent config is checked by name before the agent is built: key, type and documented range."""

from __future__ import annotations

import pytest

from driftrank.agents import AgentContext, check_config, config_keys, find_factory, make_agent
from driftrank.agents.config_check import in_range
from driftrank.envs import make_config

CONTEXT = AgentContext(world=make_config("stationary", n_users=300, n_items=200))


@pytest.mark.parametrize("agent, config, needles", [
    ("incremental", {"period": "abc"}, ["'incremental'", "period='abc'", "an integer",
                                        "default 2000"]),
    ("drn", {"lr": -1}, ["'drn'", "lr=-1", "out of range", "lr > 0"]),
    ("drn", {"epsilon": 2}, ["'drn'", "epsilon=2", "epsilon [0, 1]"]),
    ("drn", {"period": True}, ["'drn'", "period=True", "an integer"]),
    ("drn", {"period": 0}, ["period=0", "period >= 1"]),
    ("drn", {"exploration": 3}, ["exploration=3", "a string"]),
    ("drn", {"epsilom": 0.1}, ["unknown config key(s) ['epsilom']", "epsilon",
                               "driftrank agents drn"]),
    ("static", {"pretrain_config": 3}, ["pretrain_config=3", "a table or null"]),
])
def test_bad_config_values_name_the_agent_the_key_and_what_is_allowed(agent, config, needles):
    with pytest.raises(ValueError) as info:
        make_agent(agent, CONTEXT, **config)
    for needle in needles:
        assert needle in str(info.value)


def test_good_values_pass_and_ints_are_numbers():
    check_config("drn", find_factory("drn"), {"lr": 1, "epsilon": 0.0, "period": 500,
                                              "next_state_horizon": None})
    check_config("last", find_factory("last"), {"steps": [1.0, 2.0]})  # unannotated: tuple


def test_config_keys_list_defaults_and_ranges():
    keys = {k.name: k for k in config_keys(find_factory("drn"))}
    assert keys["period"].default == 2000 and keys["period"].annotation == "int"
    assert keys["epsilon"].allowed == "[0, 1]"
    assert "context" not in keys


@pytest.mark.parametrize("value, allowed, inside", [
    (0, ">= 0", True), (0, "> 0", False), (1, "[0, 1]", True), (1, "[0, 1)", False),
    (0, "(0, 1]", False), (0.5, "(0, 1]", True), (-1, "<= 0", True),
])
def test_ranges(value, allowed, inside):
    assert in_range(value, allowed) is inside
