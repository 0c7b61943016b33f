"""What one cell of an experiment is: :class:`CellSpec`, and the helpers that name it.

A cell is (scenario + world overrides, agent name + config, seed, requests, batch, window,
serving strictness). :class:`CellLength` holds the fields a cell shares with a grid (a
:class:`~driftrank.experiments.grid_spec.GridSpec` is cells of one length), so both check and
serialise them the same way. Specs are JSON-serialisable; a cell's id is a readable prefix plus
a hash of its canonical JSON, stable across runs and machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..envs import WorldConfig, make_config

#: ``max_steps`` the runner gives the env (long enough for any cell) unless ``world`` sets it.
RUN_MAX_STEPS = 10**9


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same text."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars, tuples and non-string keys made plain JSON values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def agent_label(agent: str, config: dict | None) -> str:
    """``agent`` alone, or ``agent(key=value, ...)`` when it has a config (sorted keys)."""
    if not config:
        return agent
    parts = [f"{k}={canonical_json(v)}" for k, v in sorted(config.items())]
    return f"{agent}({', '.join(parts)})"


def slug(text: str, limit: int | None = None) -> str:
    """``text`` as a file-name-safe piece (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:limit] or "x"


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or ``ValueError`` naming ``name`` and the minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def spec_from_dict(cls, d: dict, what: str):
    """``cls(**d)`` after refusing keys that are no field of ``cls`` (naming them)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; valid: {sorted(known)}")
    return cls(**d)


@dataclass(frozen=True, kw_only=True)
class CellLength:
    """How long a cell runs and how it is served; shared by a cell and a grid.

    ``requests`` and ``window`` are counted in requests and must be whole numbers of batches
    (one env step serves ``batch`` requests). ``strict``: an agent's slate with a repeated
    candidate fails the cell (naming the agent and the row); ``strict=False`` serves it with
    the repeated slot left empty and counts empty slots in the results.
    """

    requests: int = 81_920
    batch: int = 256
    window: int = 2_048
    strict: bool = True

    #: fields added after ids were first published: left out of ``to_dict`` at their default,
    #: so adding them did not rename any finished cell or grid
    OPTIONAL = ("strict",)

    def check_length(self) -> None:
        check_int("batch", self.batch, 1)
        check_int("requests", self.requests, 1)
        check_int("window", self.window, 1)
        if not isinstance(self.strict, bool):
            raise ValueError(f"strict={self.strict!r} must be true or false")
        for name in ("requests", "window"):
            value = getattr(self, name)
            if value % self.batch:
                lower = max(self.batch, value // self.batch * self.batch)
                raise ValueError(
                    f"{name}={value} is not a whole number of batches of batch={self.batch} "
                    f"(one step serves one batch); use e.g. {name}={lower} or "
                    f"{lower + self.batch}")
        if self.window > self.requests:
            raise ValueError(
                f"window={self.window} exceeds requests={self.requests}; the cell would have no "
                "complete metrics window")

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.OPTIONAL and value == f.default:
                continue
            out[f.name] = plain(value)
        return out


@dataclass(frozen=True)
class CellSpec(CellLength):
    """Everything that defines one cell; JSON-serialisable (``to_dict`` / ``from_dict``).

    ``world`` holds world-setting overrides on top of the scenario (e.g. ``{"n_users": 300}``);
    ``agent_config`` is the agent's keyword config.
    """

    scenario: str
    agent: str
    seed: int = 0
    agent_config: dict = field(default_factory=dict)
    world: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, str) or not self.scenario:
            raise ValueError(f"scenario={self.scenario!r} must be a scenario name")
        if not isinstance(self.agent, str) or not self.agent:
            raise ValueError(f"agent={self.agent!r} must be an agent name")
        check_int("seed", self.seed, 0)
        self.check_length()
        if not isinstance(self.agent_config, dict):
            raise ValueError(f"agent_config={self.agent_config!r} must be a dict of keywords")
        if not isinstance(self.world, dict):
            raise ValueError(f"world={self.world!r} must be a dict of world settings")
        max_steps = self.world.get("max_steps", RUN_MAX_STEPS)
        if isinstance(max_steps, int) and not isinstance(max_steps, bool) \
                and max_steps < self.requests // self.batch:
            raise ValueError(
                f"world setting max_steps={max_steps} is fewer than the cell's "
                f"{self.requests // self.batch} steps (requests/batch); the episode would "
                "reset mid-cell. Leave max_steps out (the runner sets it) or raise it")
        try:  # JSON-able, so the cell id and the results store can record it
            canonical_json(self.to_dict())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cell settings must be plain JSON values: {exc}") from exc

    @classmethod
    def from_dict(cls, d: dict) -> CellSpec:
        return spec_from_dict(cls, d, "cell")

    @property
    def label(self) -> str:
        return agent_label(self.agent, self.agent_config)

    @property
    def cell_id(self) -> str:
        """Readable prefix + hash of the canonical JSON: stable across runs and machines."""
        digest = hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:12]
        return f"{slug(self.scenario, 40)}.{slug(self.agent, 40)}.s{self.seed}.{digest}"

    @property
    def steps(self) -> int:
        return self.requests // self.batch

    def world_config(self) -> WorldConfig:
        """The :class:`WorldConfig` this cell's env runs (what ``AgentContext.world`` holds).

        ``max_steps`` is :data:`RUN_MAX_STEPS` whatever the cell length (unless ``world`` sets
        it, to at least the cell's steps), so cells of different lengths share a world config
        (and pretrained checkpoints keyed on it).
        """
        return make_config(self.scenario, **{"max_steps": RUN_MAX_STEPS, **self.world})
