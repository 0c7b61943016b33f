"""Grid files: a grid (and optionally how to run it) in TOML (or the same keys in JSON).

Example ``grid.toml``::

    scenarios = ["stationary", "abrupt-shift"]
    seeds = "0-4"                  # or a list: [0, 1, 2, 3, 4]
    requests = 81920               # per cell; a whole number of batches
    batch = 256                    # requests per env step
    window = 2048                  # requests per metrics window

    [world]                        # world settings for every scenario
    n_users = 2000

    [scenario_world.abrupt-shift]  # settings for one scenario (win over [world])
    abrupt_times = [20000, 60000]

    [[agents]]
    name = "random"

    [[agents]]
    name = "oracle"

    [run]                          # optional defaults for `driftrank grid` flags
    out = "runs/main"
    launcher = "ray"               # or "serial"
    retries = 1

Command-line flags win over the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

GRID_KEYS = ("scenarios", "agents", "seeds", "requests", "batch", "window", "world",
             "scenario_world")
RUN_KEYS = ("out", "launcher", "address", "retries", "progress", "cpus_per_cell", "threads",
            "workers", "cache_dir", "runtime_env")


def parse_seeds(value) -> list[int]:
    """Seeds from ``[0, 1]``, ``3`` (one seed), ``"0,1,2"``, ``"0-4"`` or ``"0-2,7"``."""
    if isinstance(value, bool):
        raise ValueError(f"seeds={value!r} must be integers, e.g. [0, 1, 2] or \"0-4\"")
    if isinstance(value, int):
        return [value]
    if isinstance(value, list | tuple):
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
            raise ValueError(f"seeds={list(value)!r} must be integers, e.g. [0, 1, 2]")
        return list(value)
    if isinstance(value, str):
        seeds: list[int] = []
        for part in value.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m:
                raise ValueError(f"seeds={value!r}: {part!r} is not a seed or a range like 0-4")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise ValueError(f"seeds={value!r}: range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        return seeds
    raise ValueError(f"seeds={value!r} must be a list of integers or a string like \"0-4\"")


def load_grid_file(path: str | Path) -> tuple[dict, dict]:
    """Read a grid file; return ``(grid settings, run settings)`` as plain dicts.

    Raises ``FileNotFoundError`` or ``ValueError`` (with the file name and the bad key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {str(path)!r} not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: "
                         f"{exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of settings at the top level")
    unknown = sorted(set(data) - set(GRID_KEYS) - {"run"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; valid keys: "
                         f"{sorted([*GRID_KEYS, 'run'])}")
    run = data.pop("run", {}) or {}
    if not isinstance(run, dict):
        raise ValueError(f"{path}: [run] must be a table")
    unknown = sorted(set(run) - set(RUN_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} in [run]; valid: {sorted(RUN_KEYS)}")
    if "seeds" in data:
        data["seeds"] = parse_seeds(data["seeds"])
    _check_world_tables(path, data)
    return data, run


def _check_world_tables(path: Path, data: dict) -> None:
    """World settings of ``[world]`` and each ``[scenario_world.NAME]``, checked against the
    scenarios they apply to, so a typo names the file and the table it sits in."""
    from ..envs import make_config

    world = data.get("world", {})
    per = data.get("scenario_world", {})
    if not isinstance(world, dict):
        raise ValueError(f"{path}: [world] must be a table of world settings")
    if not isinstance(per, dict):
        raise ValueError(f"{path}: [scenario_world] must hold one table per scenario")
    scenarios = data.get("scenarios")
    scenarios = [scenarios] if isinstance(scenarios, str) else list(scenarios or [])
    for scenario in [s for s in scenarios if isinstance(s, str)] or ["stationary"]:
        if scenario in per:
            continue
        try:
            make_config(scenario, **world)
        except ValueError as exc:
            if "unknown scenario" in str(exc):
                raise ValueError(f"{path}: scenarios: {exc}") from exc
            raise ValueError(f"{path}: [world]: {exc}") from exc
    for scenario, table in per.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: [scenario_world.{scenario}] must be a table")
        try:
            make_config(scenario, **{**world, **table})
        except ValueError as exc:
            raise ValueError(f"{path}: [scenario_world.{scenario}] (with [world]): {exc}") \
                from exc
