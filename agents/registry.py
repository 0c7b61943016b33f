"""Agent registry: built-in agents by decorator, third-party agents by entry point.

- In-process: ``@register_agent("name", "one-line description")`` on a factory (a class or a
  function ``factory(context, **config) -> agent``).
- Third-party packages need no change to driftrank: they declare an entry point in the group
  ``driftrank.agents`` (``name = "package.module:factory"``), and :func:`make_agent` finds it
  through ``importlib.metadata``.

Config keys are checked by name against the factory's signature, annotations and documented
ranges (:mod:`.config_check`), so a typo or a wrong value fails at construction with what is
allowed instead of being silently ignored or failing deep inside torch.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from .base import AgentContext
from .config_check import check_config

ENTRY_POINT_GROUP = "driftrank.agents"
_BUILTIN_MODULES = ("random_agent", "oracle", "stale_oracle", "static", "incremental", "drn",
                    "last", "best_of_n", "adapter", "film", "maml")


@dataclass(frozen=True)
class AgentEntry:
    name: str
    factory: Callable
    description: str
    origin: str  # "builtin" or the entry point's value


_REGISTRY: dict[str, AgentEntry] = {}


def register_agent(name: str, description: str = ""):
    """Decorator registering ``factory`` under ``name``."""

    def wrap(factory):
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        _REGISTRY[name] = AgentEntry(name, factory, doc, "builtin")
        return factory

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(f".{module}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise


def _plugin_entries() -> dict[str, AgentEntry]:
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep
    return found


def available_agents() -> dict[str, AgentEntry]:
    """Every agent that :func:`make_agent` can build: built-ins first, then plugins."""
    _load_builtins()
    agents = dict(_REGISTRY)
    for name, ep in _plugin_entries().items():
        if name not in agents:
            agents[name] = AgentEntry(name, ep, "(plugin) " + ep.value, ep.value)
    return agents


def load_factory(entry: AgentEntry) -> Callable:
    """The entry's factory (an entry point is imported here: a broken plugin fails with its
    name and origin, as a ``ValueError`` the CLI reports)."""
    factory = entry.factory
    if hasattr(factory, "load") and hasattr(factory, "group"):  # an EntryPoint
        try:
            factory = factory.load()
        except Exception as exc:
            raise ValueError(f"agent plugin {entry.name!r} ({entry.origin}) failed to import: "
                             f"{exc}") from exc
    return factory


def find_factory(name: str) -> Callable:
    """The factory registered as ``name``; ``ValueError`` listing the agents if none is."""
    agents = available_agents()
    if name not in agents:
        raise ValueError(
            f"unknown agent {name!r}; available agents: {sorted(agents)} (see `driftrank "
            f"agents`; third-party agents register through the entry-point group "
            f"{ENTRY_POINT_GROUP!r})")
    return load_factory(agents[name])


def checked_factory(name: str, config: dict) -> Callable:
    """The factory of ``name`` after checking ``config`` against it (keys, types, ranges)."""
    factory = find_factory(name)
    check_config(name, factory, config)
    return factory


def make_agent(name: str, context: AgentContext, **config):
    """Build the agent registered as ``name`` with keyword ``config``."""
    factory = checked_factory(name, config)
    agent = factory(context, **config)
    for method in ("act", "observe"):
        if not callable(getattr(agent, method, None)):
            raise TypeError(f"agent {name!r} has no {method}() method; see driftrank.agents.base")
    if not getattr(agent, "name", None):
        agent.name = name
    return agent
