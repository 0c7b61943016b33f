"""Grids of cells, run serially or as Ray tasks, resumable and never silently lossy.

A :class:`GridSpec` is the Cartesian product scenarios x agents x seeds, with one length
(requests, batch, metrics window) and world overrides (common and per scenario)::

    spec = GridSpec(scenarios=["stationary", "abrupt-shift"],
                    agents=["random", ("last", {"steps": 4})],
                    seeds=[0, 1, 2], requests=40_960, batch=256, window=2_048,
                    world={"n_users": 2_000},
                    scenario_world={"abrupt-shift": {"abrupt_times": [20_000]}})
    summary = run_grid(spec, "runs/main", launcher="ray")     # or launcher="serial"
    df = load_results("runs/main")

:func:`run_grid`

1. checks the whole spec up front (scenarios, world settings, agent names and config keys), so
   a typo fails in a second instead of in every cell;
2. writes ``RUN_DIR/grid.json`` and skips cells whose results are already stored (a re-run of
   the same command resumes);
3. calls each agent factory's optional ``prepare(context)`` once per (world config, seed) in the
   driver (agents build pretrained checkpoints there, cached under ``cache_dir``); keys of the
   agent's config that ``prepare`` accepts by name (e.g. ``pretrain_config``) are passed too;
4. runs the remaining cells: in-process one after another (``serial``), or one Ray task per cell
   (``ray``: ``ray.init()`` locally, or ``address=`` for a running cluster; an already
   initialised Ray session is used as is);
5. writes every finished cell atomically as results arrive (``cells/<cell_id>.parquet``);
   retries a failed cell ``retries`` times, then records it in ``failed/<cell_id>.json`` with
   its traceback and lists it in the returned :class:`GridSummary`.

It raises :class:`GridError` only if no cell of the grid has results (every cell failed).

On a multi-node cluster the workers must be able to import driftrank and any plugin agents
(install them on every node, or pass ``runtime_env``, e.g. ``{"py_modules": [...]}`` or
``{"pip": [...]}``), and ``cache_dir`` should be on storage every node can read. Agents
registered in the driver's own script with ``@register_agent`` are sent to the workers with the
tasks.
"""

from __future__ import annotations

import hashlib
import inspect
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import store
from .runner import _DEFAULTS, CellSpec, _check_int, canonical_json, run_cell
from .store import load_results

__all__ = ["GridError", "GridSpec", "GridSummary", "LAUNCHERS", "bench_grid", "load_results",
           "prepare_kwargs", "ray_task_options", "run_grid", "shipped_factories"]

LAUNCHERS = ("serial", "ray")


class GridError(RuntimeError):
    """Every cell of the grid failed; ``summary`` says how."""

    def __init__(self, message: str, summary: GridSummary):
        super().__init__(message)
        self.summary = summary


# ---------------------------------------------------------------------------------- the spec
def _normalise_agents(agents) -> tuple[tuple[str, dict], ...]:
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


@dataclass
class GridSpec:
    """Scenarios x agents x seeds, one cell length, world overrides.

    ``agents``: names or ``(name, config)`` pairs (or ``{"name", "config"}`` dicts).
    ``world``: world-setting overrides for every scenario; ``scenario_world``: overrides for
    one scenario (they win over ``world``).
    """

    scenarios: list[str]
    agents: list
    seeds: list[int] = field(default_factory=lambda: [0])
    requests: int = _DEFAULTS["requests"]
    batch: int = _DEFAULTS["batch"]
    window: int = _DEFAULTS["window"]
    world: dict = field(default_factory=dict)
    scenario_world: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.scenarios, str):
            self.scenarios = [self.scenarios]
        self.scenarios = list(self.scenarios)
        if not self.scenarios:
            raise ValueError("scenarios is empty; name at least one (see `driftrank scenarios`)")
        for s in self.scenarios:
            if not isinstance(s, str) or not s:
                raise ValueError(f"scenario {s!r} must be a scenario name")
        dup = sorted({s for s in self.scenarios if self.scenarios.count(s) > 1})
        if dup:
            raise ValueError(f"scenario(s) {dup} listed more than once")
        self.agents = list(_normalise_agents(self.agents))
        if not self.agents:
            raise ValueError("agents is empty; name at least one (see `driftrank agents`)")
        labels = [canonical_json(a) for a in self.agents]
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dup:
            raise ValueError(f"agent entr(y/ies) {dup} listed more than once")
        if isinstance(self.seeds, int):
            self.seeds = [self.seeds]
        self.seeds = [_check_int("seed", s, 0) for s in self.seeds]
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed")
        dup = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if dup:
            raise ValueError(f"seed(s) {dup} listed more than once")
        if not isinstance(self.world, dict):
            raise ValueError(f"world={self.world!r} must be a table/dict of world settings")
        if not isinstance(self.scenario_world, dict):
            raise ValueError(f"scenario_world={self.scenario_world!r} must map scenario names "
                             "to tables of world settings")
        for name, overrides in self.scenario_world.items():
            if name not in self.scenarios:
                raise ValueError(f"scenario_world has settings for {name!r}, which is not in "
                                 f"scenarios {self.scenarios}")
            if not isinstance(overrides, dict):
                raise ValueError(f"scenario_world[{name!r}]={overrides!r} must be a table/dict")
        # cell-level checks (lengths, JSON-ability) and world settings, once per scenario
        for scenario in self.scenarios:
            cell = self._cell(scenario, self.agents[0], self.seeds[0])
            cell.world_config()

    def _cell(self, scenario: str, agent: tuple[str, dict], seed: int) -> CellSpec:
        world = {**self.world, **self.scenario_world.get(scenario, {})}
        return CellSpec(scenario=scenario, agent=agent[0], agent_config=dict(agent[1]),
                        seed=seed, requests=self.requests, batch=self.batch,
                        window=self.window, world=world)

    def cells(self) -> list[CellSpec]:
        """Every cell, scenarios x agents x seeds (in that nesting order)."""
        return [self._cell(s, a, seed) for s in self.scenarios for a in self.agents
                for seed in self.seeds]

    def check_agents(self) -> None:
        """Raise ``ValueError`` for an unknown agent name or an unknown config key."""
        from ..agents import available_agents
        from ..agents.registry import check_config

        agents = available_agents()
        for name, config in self.agents:
            if name not in agents:
                raise ValueError(f"unknown agent {name!r}; available agents: {sorted(agents)} "
                                 "(see `driftrank agents`)")
            check_config(name, _load_factory(agents[name]), config)

    def to_dict(self) -> dict:
        return {
            "scenarios": list(self.scenarios),
            "agents": [{"name": n, "config": c} for n, c in self.agents],
            "seeds": list(self.seeds),
            "requests": self.requests,
            "batch": self.batch,
            "window": self.window,
            "world": dict(self.world),
            "scenario_world": {k: dict(v) for k, v in self.scenario_world.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> GridSpec:
        known = {"scenarios", "agents", "seeds", "requests", "batch", "window", "world",
                 "scenario_world"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown grid setting(s) {unknown}; valid: {sorted(known)}")
        missing = sorted({"scenarios", "agents"} - set(d))
        if missing:
            raise ValueError(f"grid needs {missing}")
        return cls(**d)

    @property
    def grid_id(self) -> str:
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:10]


def _load_factory(entry):
    factory = entry.factory
    if hasattr(factory, "load") and hasattr(factory, "group"):  # an entry point
        try:
            factory = factory.load()
        except Exception as exc:
            raise ValueError(f"agent plugin {entry.name!r} ({entry.origin}) failed to import: "
                             f"{exc}") from exc
    return factory


# ---------------------------------------------------------------------------------- summary
@dataclass
class GridSummary:
    """What one :func:`run_grid` call did."""

    run_dir: Path
    launcher: str
    total: int  # cells in the grid
    skipped: list[str] = field(default_factory=list)  # finished before this call
    completed: list[str] = field(default_factory=list)  # finished by this call
    failed: list[dict] = field(default_factory=list)  # failure records (see failed/*.json)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        text = (f"{self.total} cells: {len(self.completed)} run, {len(self.skipped)} already "
                f"done, {len(self.failed)} failed ({self.launcher}, {self.wall_s:.1f} s) -> "
                f"{self.run_dir}")
        for f in self.failed:
            text += f"\n  FAILED {f['cell_id']} after {f['attempts']} attempt(s): {f['error']}"
        if self.failed:
            text += f"\n  tracebacks: {Path(self.run_dir) / store.FAILED}/<cell_id>.json"
        return text


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError carries the original
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _failure_record(cell: CellSpec, launcher: str, stage: str, errors: list[tuple[str, str]]):
    return {
        "cell_id": cell.cell_id,
        "label": cell.label,
        "scenario": cell.scenario,
        "seed": cell.seed,
        "cell": cell.to_dict(),
        "launcher": launcher,
        "stage": stage,
        "attempts": len(errors),
        "error": errors[-1][0],
        "traceback": errors[-1][1],
        "errors": [e for e, _ in errors],
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------- run_grid
def run_grid(
    spec: GridSpec | dict,
    run_dir: str | Path,
    launcher: str = "serial",
    address: str | None = None,
    retries: int = 1,
    progress: bool = True,
    num_cpus_per_cell: float = 1.0,
    *,
    threads: int = 1,
    cache_dir: str | Path = ".driftrank_cache",
    runtime_env: dict | None = None,
    num_cpus: int | None = None,
    ray_options: dict | Callable[[CellSpec], dict] | None = None,
) -> GridSummary:
    """Run every unfinished cell of ``spec`` and store the results under ``run_dir``.

    ``launcher``: ``"serial"`` (in this process) or ``"ray"`` (one task per cell; starts a local
    Ray with ``ray.init()``, or connects to ``address``; an initialised session is reused).
    ``retries``: extra attempts of a failed cell before it is recorded as failed.
    ``num_cpus_per_cell``: Ray CPUs reserved per cell (fractions allowed); ``threads``: torch
    threads inside a cell. ``runtime_env``: Ray runtime environment for the workers (job-level
    when this call starts Ray, per task otherwise). ``num_cpus``: CPUs of a local Ray started
    here. ``ray_options``: extra ``.options(...)`` of the cell tasks (e.g. ``resources``,
    ``num_gpus`` or ``scheduling_strategy``), as a dict for every cell or a function
    ``cell -> dict`` (e.g. GPUs only for the cells of one agent).
    """
    if isinstance(spec, dict):
        spec = GridSpec.from_dict(spec)
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher={launcher!r}; choose one of {list(LAUNCHERS)}")
    retries = _check_int("retries", retries, 0)
    threads = _check_int("threads", threads, 1)
    if isinstance(num_cpus_per_cell, bool) or not isinstance(num_cpus_per_cell, int | float) \
            or not num_cpus_per_cell > 0:
        raise ValueError(f"num_cpus_per_cell={num_cpus_per_cell!r} must be a number > 0")
    if num_cpus is not None:
        num_cpus = _check_int("num_cpus", num_cpus, 1)
    if launcher == "serial" and (address or runtime_env or ray_options):
        raise ValueError("address, runtime_env and ray_options need launcher='ray'")
    spec.check_agents()

    run_dir = Path(run_dir).absolute()
    cache_dir = Path(cache_dir).absolute()
    previous = store.read_grid_spec(run_dir)
    if previous is not None and previous != spec.to_dict():
        raise ValueError(
            f"run folder {str(run_dir)!r} holds a different grid (its grid.json differs); "
            "pick another folder, or delete its grid.json to reuse the folder (finished cells "
            "that are part of the new grid are kept)")
    run_dir.mkdir(parents=True, exist_ok=True)
    store.remove_stale_temp_files(run_dir)
    store.write_grid_spec(run_dir, spec.to_dict())

    start = time.perf_counter()
    cells = spec.cells()
    done = store.finished_cells(run_dir)
    summary = GridSummary(run_dir=run_dir, launcher=launcher, total=len(cells))
    summary.skipped = [c.cell_id for c in cells if c.cell_id in done]
    todo = [c for c in cells if c.cell_id not in done]

    todo = _prepare(todo, cache_dir, threads, launcher, run_dir, summary, progress)
    if todo:
        if launcher == "serial":
            _run_serial(todo, run_dir, cache_dir, threads, retries, progress, summary)
        else:
            _run_ray(todo, run_dir, cache_dir, threads, retries, progress, summary, address,
                     num_cpus_per_cell, runtime_env, num_cpus, ray_options)
    summary.wall_s = time.perf_counter() - start
    if summary.failed and not summary.completed and not summary.skipped:
        raise GridError(f"every cell failed\n{summary}", summary)
    return summary


def _bar(total: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="cell", disable=not progress, dynamic_ncols=True)


def prepare_kwargs(prepare: Callable, agent_config: dict) -> dict:
    """The part of an agent's config that its ``prepare(context, ...)`` accepts by keyword
    (all of it if ``prepare`` takes ``**kwargs``), e.g. ``pretrain_config``."""
    try:
        params = list(inspect.signature(prepare).parameters.values())
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(agent_config)
    names = {p.name for p in params[1:]
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in agent_config.items() if k in names}


def _prepare(todo, cache_dir, threads, launcher, run_dir, summary, progress) -> list[CellSpec]:
    """Call each factory's ``prepare(context)`` once per (world config, seed); drop the cells
    whose preparation failed (recording them as failed)."""
    from ..agents import AgentContext, available_agents

    agents = available_agents()
    jobs: dict[tuple, list[CellSpec]] = {}
    calls = {}
    for cell in todo:
        factory = _load_factory(agents[cell.agent])
        prepare = getattr(factory, "prepare", None)
        if callable(prepare):
            kwargs = prepare_kwargs(prepare, cell.agent_config)
            key = (cell.agent, cell.world_config(), cell.seed, canonical_json(kwargs))
            calls[key] = (prepare, kwargs)
            jobs.setdefault(key, []).append(cell)
    if not jobs:
        return todo
    broken: set[str] = set()
    with _bar(len(jobs), progress, "prepare") as bar:
        for key, cells in jobs.items():
            name, config, seed, _ = key
            context = AgentContext(world=config, seed=seed, cache_dir=cache_dir, threads=threads)
            prepare, kwargs = calls[key]
            try:
                prepare(context, **kwargs)
            except Exception as exc:
                err = [(f"prepare() of agent {name!r} failed: {_one_line(exc)}",
                        traceback.format_exc())]
                for cell in cells:
                    record = _failure_record(cell, launcher, "prepare", err)
                    store.write_failure(run_dir, cell.cell_id, record)
                    summary.failed.append(record)
                    broken.add(cell.cell_id)
            bar.update(1)
    return [c for c in todo if c.cell_id not in broken]


def _run_serial(todo, run_dir, cache_dir, threads, retries, progress, summary) -> None:
    with _bar(len(todo), progress, "cells") as bar:
        for cell in todo:
            errors: list[tuple[str, str]] = []
            while True:
                try:
                    df = run_cell(cell, cache_dir=cache_dir, threads=threads)
                except Exception as exc:
                    errors.append((_one_line(exc), traceback.format_exc()))
                    if len(errors) > retries:
                        record = _failure_record(cell, "serial", "run", errors)
                        store.write_failure(run_dir, cell.cell_id, record)
                        summary.failed.append(record)
                        break
                else:
                    df["node_id"] = "local"
                    store.write_cell(run_dir, cell.cell_id, df)
                    summary.completed.append(cell.cell_id)
                    break
            bar.update(1)
            bar.set_postfix(failed=len(summary.failed), refresh=False)


# ---------------------------------------------------------------------------------- Ray
#: seconds ``ray.wait`` blocks before the progress bar is refreshed
WAIT_TIMEOUT_S = 1.0
#: seconds ``ray.get`` may take for a result that ``ray.wait`` reported ready
GET_TIMEOUT_S = 120.0


def _ray_cell_task(spec_dict: dict, cache_dir: str, threads: int, shipped: dict):
    """One cell on a Ray worker; returns its DataFrame with the worker's ``node_id``."""
    import ray

    if shipped:
        from ..agents import register_agent

        for name, (factory, description) in shipped.items():
            register_agent(name, description)(factory)
    df = run_cell(CellSpec.from_dict(spec_dict), cache_dir=cache_dir, threads=threads)
    df["node_id"] = ray.get_runtime_context().get_node_id()
    return df


def shipped_factories(names) -> dict[str, tuple[Any, str]]:
    """Agents registered in-process outside driftrank (a script's ``@register_agent``): the
    workers cannot find them by import, so they travel with the tasks."""
    from ..agents import available_agents

    agents = available_agents()
    out = {}
    for name in sorted(set(names)):
        entry = agents[name]
        if entry.origin != "builtin":
            continue  # entry-point plugin: workers find it through importlib.metadata
        module = getattr(entry.factory, "__module__", "") or ""
        if module == "driftrank" or module.startswith("driftrank."):
            continue
        out[name] = (entry.factory, entry.description)
    return out


def ray_task_options(num_cpus_per_cell: float, runtime_env: dict | None, started_here: bool,
                     ray_options: dict) -> dict:
    """``.options(...)`` of a cell task. Retries are ours (same rule serial and on Ray), so
    Ray's own are off; ``runtime_env`` goes per task when the session was not started here."""
    opts: dict[str, Any] = {"num_cpus": num_cpus_per_cell, "max_retries": 0,
                            "retry_exceptions": False}
    if runtime_env and not started_here:
        opts["runtime_env"] = runtime_env
    opts.update(ray_options)
    return opts


def _run_ray(todo, run_dir, cache_dir, threads, retries, progress, summary, address,
             num_cpus_per_cell, runtime_env, num_cpus, ray_options) -> None:
    import ray

    started_here = False
    if ray.is_initialized():
        if address:
            warnings.warn(f"Ray is already initialised; address={address!r} is ignored and the "
                          "running session is used", stacklevel=3)
    else:
        kwargs: dict[str, Any] = {"address": address}
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        if num_cpus is not None and not address:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
        started_here = True
    try:
        shipped = shipped_factories(c.agent for c in todo)
        try:
            shipped_ref = ray.put(shipped)
        except Exception as exc:
            raise ValueError(
                f"agent(s) {sorted(shipped)} are registered in this process only and could not "
                f"be sent to Ray workers ({exc}); make them importable (an installed module or "
                "an entry point) or use launcher='serial'") from exc
        task = ray.remote(_ray_cell_task)
        pending: dict[Any, tuple[CellSpec, list]] = {}

        def submit(cell: CellSpec, errors: list) -> None:
            extra = ray_options(cell) if callable(ray_options) else (ray_options or {})
            opts = ray_task_options(num_cpus_per_cell, runtime_env, started_here, extra)
            ref = task.options(**opts).remote(cell.to_dict(), str(cache_dir), threads,
                                              shipped_ref)
            pending[ref] = (cell, errors)

        for cell in todo:
            submit(cell, [])
        with _bar(len(todo), progress, "cells") as bar:
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_TIMEOUT_S)
                    if not ready:
                        bar.refresh()
                        continue
                    for ref in ready:
                        cell, errors = pending.pop(ref)
                        try:
                            df = ray.get(ref, timeout=GET_TIMEOUT_S)
                        except Exception as exc:
                            errors.append((_one_line(exc), _ray_traceback(exc)))
                            if len(errors) <= retries:
                                submit(cell, errors)
                                continue
                            record = _failure_record(cell, "ray", "run", errors)
                            store.write_failure(run_dir, cell.cell_id, record)
                            summary.failed.append(record)
                        else:
                            store.write_cell(run_dir, cell.cell_id, df)
                            summary.completed.append(cell.cell_id)
                        bar.update(1)
                        bar.set_postfix(failed=len(summary.failed), refresh=False)
            except BaseException:
                for ref in pending:  # interrupted: finished cells are on disk already
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - best effort
                        pass
                raise
    finally:
        if started_here:
            ray.shutdown()


def _ray_traceback(exc: BaseException) -> str:
    text = str(exc)  # a RayTaskError's text holds the worker's traceback
    if "Traceback" in text:
        return text
    return "".join(traceback.format_exception(exc))


# ---------------------------------------------------------------------------------- bench
def _warm_worker() -> None:
    """Import what a cell needs, so the timed grid does not pay worker start-up."""
    from .runner import _set_torch_threads

    _set_torch_threads(1)


def bench_grid(cells: int = 4, requests: int = 20_480, batch: int = 256, workers: int = 2,
               scenario: str = "stationary", agent: str = "random",
               world: dict | None = None, address: str | None = None) -> dict:
    """Wall time of one fixed grid run serially and on Ray with ``workers`` CPUs.

    The grid is ``cells`` seeds of (``scenario``, ``agent``); each cell serves ``requests``.
    Ray start-up (``ray.init`` plus one warm-up task per CPU, so workers have imported torch
    and driftrank) is timed separately (``ray_start_s``) from the grid itself. If Ray is already
    initialised, that session is used (and ``workers`` is whatever it has).
    """
    import tempfile

    import ray

    spec = GridSpec(scenarios=[scenario], agents=[agent], seeds=list(range(cells)),
                    requests=requests, batch=batch, window=requests, world=dict(world or {}))
    spec.check_agents()
    from .runner import _set_torch_threads

    _set_torch_threads(1)  # imports torch now, not inside the timed serial run
    with tempfile.TemporaryDirectory(prefix="driftrank-bench-") as tmp:
        t0 = time.perf_counter()
        run_grid(spec, Path(tmp) / "serial", launcher="serial", progress=False)
        serial_s = time.perf_counter() - t0

        started_here = not ray.is_initialized()
        t0 = time.perf_counter()
        if started_here:
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=workers, include_dashboard=False)
        try:
            cpus = ray.cluster_resources().get("CPU", 0.0)
            warm = ray.remote(_warm_worker).options(num_cpus=1)
            ray.get([warm.remote() for _ in range(max(1, int(cpus)))], timeout=GET_TIMEOUT_S)
            ray_start_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_grid(spec, Path(tmp) / "ray", launcher="ray", progress=False)
            ray_s = time.perf_counter() - t0
        finally:
            if started_here:
                ray.shutdown()
    return {
        "cells": cells, "requests_per_cell": requests, "batch": batch,
        "ray_cpus": cpus, "serial_s": serial_s, "ray_s": ray_s, "ray_start_s": ray_start_s,
        "speedup": serial_s / ray_s, "speedup_with_start": serial_s / (ray_s + ray_start_s),
    }
