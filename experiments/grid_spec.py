"""What a grid is: :class:`GridSpec`, scenarios x agents x seeds of one cell length.

::

    spec = GridSpec(scenarios=["stationary", "abrupt-shift"],
                    agents=["random", ("last", {"steps": 4})],
                    seeds=[0, 1, 2], requests=40_960, batch=256, window=2_048,
                    world={"n_users": 2_000},
                    scenario_world={"abrupt-shift": {"abrupt_times": [20_000]}})

The length fields (``requests``, ``batch``, ``window``, ``strict``) are the cell's own
(:class:`~.cell.CellLength`), checked and serialised the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..agents import checked_factory
from .cell import CellLength, CellSpec, canonical_json, check_int, spec_from_dict


def normalise_agents(agents) -> tuple[tuple[str, dict], ...]:
    """Agent entries (names, ``(name, config)`` pairs, ``{"name", "config"}`` tables) as pairs."""
    if isinstance(agents, str | dict) or not hasattr(agents, "__iter__"):
        agents = [agents]
    out = []
    for a in agents:
        if isinstance(a, str):
            name, config = a, {}
        elif isinstance(a, dict):
            unknown = sorted(set(a) - {"name", "config"})
            if "name" not in a or unknown:
                raise ValueError(
                    f"agent entry {a!r} must have a 'name' and optionally a 'config' table"
                    + (f"; unknown key(s) {unknown}" if unknown else ""))
            name, config = a["name"], a.get("config") or {}
        elif isinstance(a, list | tuple) and len(a) == 2:
            name, config = a[0], a[1] or {}
        else:
            raise ValueError(f"agent entry {a!r} must be a name or a (name, config) pair")
        if not isinstance(name, str) or not name:
            raise ValueError(f"agent name {name!r} must be a non-empty string")
        if not isinstance(config, dict):
            raise ValueError(f"config of agent {name!r} must be a table/dict, got {config!r}")
        out.append((name, dict(config)))
    return tuple(out)


def _no_repeats(values: list, what: str) -> None:
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise ValueError(f"{what} {dup} listed more than once")


@dataclass(frozen=True)
class GridSpec(CellLength):
    """Scenarios x agents x seeds, one cell length, world overrides.

    ``agents``: names or ``(name, config)`` pairs (or ``{"name", "config"}`` dicts).
    ``world``: world-setting overrides for every scenario; ``scenario_world``: overrides for
    one scenario (they win over ``world``).
    """

    scenarios: list[str]
    agents: list
    seeds: list[int] = field(default_factory=lambda: [0])
    world: dict = field(default_factory=dict)
    scenario_world: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        scenarios = [self.scenarios] if isinstance(self.scenarios, str) else list(self.scenarios)
        if not scenarios:
            raise ValueError("scenarios is empty; name at least one (see `driftrank scenarios`)")
        for s in scenarios:
            if not isinstance(s, str) or not s:
                raise ValueError(f"scenario {s!r} must be a scenario name")
        _no_repeats(scenarios, "scenario(s)")
        agents = list(normalise_agents(self.agents))
        if not agents:
            raise ValueError("agents is empty; name at least one (see `driftrank agents`)")
        _no_repeats([canonical_json(a) for a in agents], "agent entr(y/ies)")
        seeds = [self.seeds] if isinstance(self.seeds, int) else self.seeds
        seeds = [check_int("seed", s, 0) for s in seeds]
        if not seeds:
            raise ValueError("seeds is empty; give at least one seed")
        _no_repeats(seeds, "seed(s)")
        for name, value in (("scenarios", scenarios), ("agents", agents), ("seeds", seeds)):
            object.__setattr__(self, name, value)
        if not isinstance(self.world, dict):
            raise ValueError(f"world={self.world!r} must be a table/dict of world settings")
        if not isinstance(self.scenario_world, dict):
            raise ValueError(f"scenario_world={self.scenario_world!r} must map scenario names "
                             "to tables of world settings")
        for name, overrides in self.scenario_world.items():
            if name not in scenarios:
                raise ValueError(f"scenario_world has settings for {name!r}, which is not in "
                                 f"scenarios {scenarios}")
            if not isinstance(overrides, dict):
                raise ValueError(f"scenario_world[{name!r}]={overrides!r} must be a table/dict")
        # cell-level checks (lengths, JSON-ability) and world settings, once per scenario
        for scenario in scenarios:
            self._cell(scenario, agents[0], seeds[0]).world_config()

    def _cell(self, scenario: str, agent: tuple[str, dict], seed: int) -> CellSpec:
        world = {**self.world, **self.scenario_world.get(scenario, {})}
        return CellSpec(scenario=scenario, agent=agent[0], agent_config=dict(agent[1]),
                        seed=seed, requests=self.requests, batch=self.batch,
                        window=self.window, strict=self.strict, world=world)

    def cells(self) -> list[CellSpec]:
        """Every cell, scenarios x agents x seeds (in that nesting order)."""
        return [self._cell(s, a, seed) for s in self.scenarios for a in self.agents
                for seed in self.seeds]

    def check_agents(self) -> None:
        """Raise ``ValueError`` for an unknown agent name or a bad config key or value."""
        for name, config in self.agents:
            checked_factory(name, config)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["agents"] = [{"name": n, "config": c} for n, c in out["agents"]]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> GridSpec:
        missing = sorted({"scenarios", "agents"} - set(d))
        if missing:
            raise ValueError(f"grid needs {missing}")
        return spec_from_dict(cls, d, "grid")

    @property
    def grid_id(self) -> str:
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:10]
