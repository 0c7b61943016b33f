"""driftrank.agents: the agent lifecycle, the registry and the built-in agents.

Lifecycle (see :mod:`driftrank.agents.base`; every hook but ``act`` has a no-op default)::

    prepare(context, **config)      classmethod, once per world config, before the cells
    attach_world(world)             truth-reading references only (``needs_world``)
    act(obs_batch) -> (B, K) int slates
    observe(feedback_batch)         clicks of its slates + delayed conversions
    on_period(requests)             every ``period`` requests
    state_dict() / load_state_dict(state), close()

Build one with ``make_agent(name, context, **config)``; list them with ``available_agents()``
or ``driftrank agents`` (``driftrank agents NAME`` shows one agent's config keys). Third-party
agents register through the entry-point group ``driftrank.agents`` and need no change to
driftrank.
"""

from .base import Agent, AgentContext, BaseAgent, periods_between
from .config_check import ConfigKey, check_config, config_keys
from .registry import (
    ENTRY_POINT_GROUP,
    available_agents,
    checked_factory,
    find_factory,
    load_factory,
    make_agent,
    register_agent,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentContext",
    "BaseAgent",
    "ConfigKey",
    "available_agents",
    "check_config",
    "checked_factory",
    "config_keys",
    "find_factory",
    "load_factory",
    "make_agent",
    "periods_between",
    "register_agent",
]
