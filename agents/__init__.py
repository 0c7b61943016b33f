"""driftrank.agents: the agent contract, the registry and the built-in agents.

Contract (see :mod:`driftrank.agents.base`)::

    act(obs_batch) -> (B, K) int slates
    observe(feedback_batch) -> None      # clicks of its slates + delayed conversions
    on_period(step), state_dict(), load_state_dict(state)   # optional

Build one with ``make_agent(name, context, **config)``; list them with ``available_agents()``
or ``driftrank agents``. Third-party agents register through the entry-point group
``driftrank.agents`` and need no change to driftrank.
"""

from .base import Agent, AgentContext, BaseAgent
from .registry import ENTRY_POINT_GROUP, available_agents, make_agent, register_agent

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentContext",
    "BaseAgent",
    "available_agents",
    "make_agent",
    "register_agent",
]
