"""The agent contract.

An agent re-ranks each request's candidates into a slate and learns from what it is told::

    class MyAgent(BaseAgent):
        name = "mine"

        def act(self, obs):                  # obs: dict of (B, ...) arrays, see envs.types
            return slates                    # (B, K) int array of candidate indices

        def observe(self, feedback):         # envs.types.Feedback: clicks of the slates it
            ...                              # served + delayed conversions landing now

Optional hooks, with do-nothing defaults in :class:`BaseAgent`:

- ``on_period(step)``: called by the runner every ``period`` requests (retraining, major
  updates); ``period`` is part of the agent's own config.
- ``state_dict()`` / ``load_state_dict(state)``: everything needed to resume the agent.
- ``needs_world = True``: the runner calls ``attach_world(world)`` before the first request.
  Only the ``oracle`` does this: it reads truth. Every other agent sees observations and labels
  only, never the world's truth.

Agents are built by :func:`driftrank.agents.make_agent` from a registry name and keyword config;
they receive an :class:`AgentContext` (world sizes, seed, where pretrained checkpoints live).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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
    name: str

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...

    def observe(self, feedback: Feedback) -> None: ...


class BaseAgent:
    """Convenience base: stores the context, a seeded generator and no-op optional hooks."""

    name = "base"
    needs_world = False

    def __init__(self, context: AgentContext):
        self.context = context
        self.rng = np.random.default_rng([context.seed, 0xA6E])

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, feedback: Feedback) -> None:
        """Default: learn nothing."""

    def on_period(self, step: int) -> None:
        """Default: no periodic work."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
