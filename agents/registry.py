"""Agent registry: built-in agents by decorator, third-party agents by entry point.

- In-process: ``@register_agent("name", "one-line description")`` on a factory (a class or a
  function ``factory(context, **config) -> agent``).
- Third-party packages need no change to driftrank: they declare an entry point in the group
  ``driftrank.agents`` (``name = "package.module:factory"``), and :func:`make_agent` finds it
  through ``importlib.metadata``.

Config keys are checked against the factory's signature, so a typo fails at construction with
the list of valid keys instead of being silently ignored.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from .base import AgentContext

ENTRY_POINT_GROUP = "driftrank.agents"
_BUILTIN_MODULES = ("random_agent", "oracle", "static", "incremental", "drn", "last",
                    "adapter", "film", "maml")


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


def _factory(entry: AgentEntry) -> Callable:
    factory = entry.factory
    if hasattr(factory, "load") and hasattr(factory, "group"):  # an EntryPoint
        try:
            factory = factory.load()
        except Exception as exc:
            raise ImportError(
                f"agent plugin {entry.name!r} ({entry.origin}) failed to import: {exc}") from exc
    return factory


def check_config(name: str, factory: Callable, config: dict) -> None:
    """Raise ``ValueError`` naming any config key the factory does not accept."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in ("self", "context")]
    bad = sorted(set(config) - set(valid))
    if bad:
        raise ValueError(
            f"agent {name!r} got unknown config key(s) {bad}; valid keys: {sorted(valid)}")


def make_agent(name: str, context: AgentContext, **config):
    """Build the agent registered as ``name`` with keyword ``config``."""
    agents = available_agents()
    if name not in agents:
        raise ValueError(
            f"unknown agent {name!r}; available agents: {sorted(agents)} "
            f"(third-party agents register through the entry-point group "
            f"{ENTRY_POINT_GROUP!r})")
    factory = _factory(agents[name])
    check_config(name, factory, config)
    agent = factory(context, **config)
    for method in ("act", "observe"):
        if not callable(getattr(agent, method, None)):
            raise TypeError(f"agent {name!r} has no {method}() method; see driftrank.agents.base")
    if not getattr(agent, "name", None):
        agent.name = name
    return agent
