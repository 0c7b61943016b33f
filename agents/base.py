"""The agent contract: one base class that declares the whole lifecycle.

An agent re-ranks each request's candidates into a slate and learns from what it is told. The
runner (:func:`driftrank.experiments.runner.run_cell`) drives every hook below, in this order;
each has a do-nothing default here, so an agent overrides only what it uses::

    Agent.prepare(context, **config)   classmethod, once per (world config, seed), in the driver
                                       before any cell starts: build shared artifacts (the
                                       pretrained checkpoints) so cells only load them
    agent = Agent(context, **config)   built by the registry from a name + keyword config
    agent.attach_world(world)          only if ``needs_world``: truth-reading references
    loop:
        slates = agent.act(obs)        (B, K) int array of distinct candidate indices
        agent.observe(feedback)        clicks of the slates it served (+ conversions landing)
        agent.on_period(requests)      after every ``period`` requests (retraining, replay)
    agent.close()                      always, also when the cell failed (Ray actors, files)

``state_dict()`` / ``load_state_dict(state)`` hold everything needed to resume the agent.

Periods have one mechanism: the runner counts requests and calls ``on_period`` once for every
multiple of ``period`` the served requests pass (:func:`periods_between`); an agent never
counts its own. ``period = None`` (the default) means no periodic work.

Only the ``oracle`` sets ``needs_world``: every other agent sees observations and labels only,
never the world's truth.

``config_ranges`` documents the allowed values of config keys (``{"period": ">= 1",
"epsilon": "[0, 1]"}``); the registry checks every config against them and against the
factory's annotations before building the agent (see :mod:`driftrank.agents.config_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..envs.config import WorldConfig
from ..envs.types import Feedback


@dataclass(frozen=True)
class AgentContext:
    """What every agent factory receives besides its own keyword config."""

    world: WorldConfig
    seed: int = 0
    cache_dir: Path = field(default_factory=lambda: Path(".driftrank_cache"))
    threads: int = 1

    @property
    def slate_size(self) -> int:
        return self.world.slate_size

    @property
    def n_candidates(self) -> int:
        return self.world.n_candidates


@runtime_checkable
class Agent(Protocol):
    """The two methods every agent has; :class:`BaseAgent` adds the optional hooks."""

    name: str

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...

    def observe(self, feedback: Feedback) -> None: ...


def periods_between(before: int, after: int, period: int | None) -> list[int]:
    """Request counts (multiples of ``period``) passed going from ``before`` to ``after``
    served requests: where ``on_period`` is due. Empty for ``period=None``."""
    if not period:
        return []
    return list(range((before // period + 1) * period, after + 1, period))


class BaseAgent:
    """The lifecycle with no-op defaults, a stored context and a seeded generator."""

    name: ClassVar[str] = "base"
    #: requests between ``on_period`` calls (``None``: never); usually from the config
    period: int | None = None
    #: the runner calls ``attach_world(world)`` before the first request
    needs_world: ClassVar[bool] = False
    #: documented ranges of config keys, checked before construction (see module docstring)
    config_ranges: ClassVar[dict[str, str]] = {}

    def __init__(self, context: AgentContext):
        self.context = context
        self.rng = np.random.default_rng([context.seed, 0xA6E])

    @classmethod
    def prepare(cls, context: AgentContext, **config) -> None:
        """Default: nothing to build ahead of the cells."""

    def attach_world(self, world) -> None:
        """Default: ignore the world (only truth-reading references set ``needs_world``)."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement act(obs)")

    def observe(self, feedback: Feedback) -> None:
        """Default: learn nothing."""

    def on_period(self, requests: int) -> None:
        """Default: no periodic work. ``requests``: requests served so far."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        """Default: nothing to release."""


def hook(agent, name: str):
    """``agent``'s lifecycle method ``name``, or :class:`BaseAgent`'s no-op default for agents
    that do not subclass it (plugins need only ``act`` and ``observe``)."""
    method = getattr(agent, name, None)
    if callable(method):
        return method
    return getattr(BaseAgent, name).__get__(agent)
