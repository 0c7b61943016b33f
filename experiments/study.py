"""``driftrank study``: each paper's claim re-run in the simulator, as one versioned grid.

The study is a fixed set of *blocks*; each block is an ordinary :class:`GridSpec` (scenarios x
agents x paired seeds) run by :func:`run_grid` into ``OUT/grids/<block>/`` (serial or Ray,
resumable, ``address`` for a cluster). Blocks exist because claims need different agents on
different scenarios and one control world (``user_features="taste"``); no (world, scenario,
agent) cell appears in two blocks, so nothing runs twice. Evaluator-level numbers (log-loss and
AUC of the compensated vs the base evaluator per slot; evaluator scores of served slates) come
from the probes in :mod:`.study_probe`, stored under ``OUT/probes/``.

Everything the lead may need to rename after a merge lives in :data:`STUDY` below: agent names
and configs, scenario roles, blocks, probe settings. An agent, scenario or world setting that
this installation does not have is left out (recorded in ``OUT/study.json``); the claims that
need it render as "not run (needs ...)". Changing :data:`STUDY` means bumping ``version``, so
results of different study versions never mix in one folder.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import store
from .grid import GridError, GridSpec, run_grid
from .results import load_results
from .runner import agent_label, canonical_json

STUDY_VERSION = 1

#: Offline phase of every model-based agent (the demo's size: ~20 s per world config).
PRETRAIN = dict(n_requests=10_000, evaluator_epochs=3, imitation_epochs=2, pg_steps=100,
                eval_requests=500)
MODEL = {"pretrain_config": PRETRAIN}
PERIOD = 2_000  # requests between retrainings (incremental, reloop, LAST's evaluator refresh)
DRN = {"period": 1_000, "warm_start_requests": 5_000}

#: The study, in one place. ``agents``: study key -> registry name + config (claims name keys).
#: ``roles``: what a claim needs from a scenario -> the scenarios that provide it.
#: ``blocks``: which agents run on which scenarios, in which world variant.
STUDY: dict = {
    "version": STUDY_VERSION,
    "seeds": [0, 1, 2, 3, 4],
    "requests": 10_000,  # the scenarios' first events must fire well inside this (scenario_world)
    "batch": 200,
    "window": 1_000,
    "world": {"n_users": 5_000},
    # the scenarios' first events moved inside the 10,000-request cells (defaults: 20,000)
    "scenario_world": {"taste-shift": {"abrupt_times": [4_000]},
                       "quality-drift": {"quality_shock_times": [4_000]},
                       "delayed-feedback": {"abrupt_times": [4_000], "click_delay": 1_000}},
    "variants": {"history": {}, "taste": {"user_features": "taste"}},
    "roles": {
        "taste": ["taste-shift"],  # users switch taste; lagged behaviour profiles
        "item": ["quality-drift"],  # hidden item drift, stale counters (ReLoop2's case)
        "cold": ["cold-churn"],  # new items and users
        "delayed": ["delayed-feedback"],  # clicks and conversions arrive late (LAST's case)
        "returns": ["cold-churn"],  # returns depend on slates (DRN's activeness), users leave
    },
    "agents": {
        "oracle": {"name": "oracle"},
        "stale-oracle": {"name": "stale-oracle"},
        "static": {"name": "static", "config": MODEL},
        "incremental": {"name": "incremental", "config": {**MODEL, "period": PERIOD}},
        "reloop": {"name": "reloop", "config": {**MODEL, "period": PERIOD}},
        "last": {"name": "last", "config": MODEL},
        "last-refresh": {"name": "last", "config": {**MODEL, "refresh_period": PERIOD}},
        "best-of-n": {"name": "best-of-n", "config": MODEL},
        "reloop2": {"name": "reloop2", "config": MODEL},
        "last+reloop2": {"name": "last+reloop2", "config": MODEL},
        "drn": {"name": "drn", "config": {**DRN, "exploration": "dbgd"}},
        "drn-no-explore": {"name": "drn", "config": {**DRN, "exploration": "greedy"}},
        "drn-click-only": {"name": "drn", "config": {**DRN, "beta": 0.0}},
        "adapter": {"name": "adapter", "config": {**MODEL, "period": PERIOD}},
        "film": {"name": "film", "config": {**MODEL, "period": PERIOD}},
        "maml": {"name": "maml", "config": MODEL},
    },
    "blocks": [  # run in this order (the cheap controls before the costly retrainers)
        {"name": "core", "variant": "history",
         "scenarios": ["taste-shift", "quality-drift", "cold-churn", "delayed-feedback"],
         "agents": ["oracle", "stale-oracle", "static", "incremental", "last", "best-of-n",
                    "reloop2", "last+reloop2"]},
        {"name": "control", "variant": "taste", "scenarios": ["taste-shift"],
         "agents": ["oracle", "stale-oracle", "static", "last+reloop2"]},
        {"name": "drn", "variant": "history", "scenarios": ["cold-churn"],
         "agents": ["drn", "drn-no-explore", "drn-click-only"]},
        {"name": "retrain", "variant": "history", "scenarios": ["taste-shift", "quality-drift"],
         "agents": ["reloop"]},
        {"name": "refresh", "variant": "history",
         "scenarios": ["taste-shift", "quality-drift", "delayed-feedback"],
         "agents": ["last-refresh"]},
        # cold users and new items: what MAML is for, and where patches must adapt fastest
        {"name": "model-adaptation", "variant": "history", "scenarios": ["cold-churn"],
         "agents": ["adapter", "film", "maml"]},
    ],
    "probes": {
        # evaluator-level: base vs error-compensated vs incrementally retrained evaluator
        "evaluator": {"scenarios": ["quality-drift"], "period": PERIOD,
                      "pretrain_config": PRETRAIN, "memory": {}},
        # served slates of these agents on identical requests, judged by the stale evaluator
        "search": {"scenarios": ["taste-shift", "quality-drift"],
                   "agents": ["static", "best-of-n", "last"], "requests": 2_000},
    },
    # columns of the results that some claims read (World v2 adds them to the runner's output)
    "columns": {"return_gap": "return_gap"},
}

#: ``--quick``: the same study on a tiny world, one seed pair, short cells (a smoke run).
QUICK = {
    "seeds": [0, 1],
    "requests": 2_000,
    "batch": 100,
    "window": 200,
    "world": {"n_users": 500, "n_items": 400},
    "pretrain": dict(n_requests=2_000, evaluator_epochs=1, imitation_epochs=1, pg_steps=10,
                     eval_requests=100),
    "drn": {"warm_start_requests": 500, "period": 500},
    "probe_requests": 1_000,
}

STUDY_FILE = "study.json"
GRIDS = "grids"
PROBES = "probes"


# ---------------------------------------------------------------------------------- config
def quick_config(config: dict | None = None) -> dict:
    """A smoke-sized copy of ``config``: tiny world, short cells, tiny pretraining."""
    c = copy.deepcopy(config or STUDY)
    q = QUICK
    c.update(seeds=list(q["seeds"]), requests=q["requests"], batch=q["batch"],
             window=q["window"], world={**c.get("world", {}), **q["world"]})
    for entry in c["agents"].values():
        cfg = entry.get("config") or {}
        if "pretrain_config" in cfg:
            cfg["pretrain_config"] = dict(q["pretrain"])
        if "period" in cfg:
            cfg["period"] = min(cfg["period"], q["requests"] // 2)
        if "refresh_period" in cfg:
            cfg["refresh_period"] = q["requests"] // 2
        if "warm_start_requests" in cfg:
            cfg.update(q["drn"])
    for settings in c.get("scenario_world", {}).values():  # events inside the short cells
        for key in ("abrupt_times", "quality_shock_times"):
            if key in settings:
                settings[key] = [q["requests"] // 2]
        if "click_delay" in settings:
            settings["click_delay"] = min(settings["click_delay"], q["requests"] // 10)
    probes = c.get("probes", {})
    if "evaluator" in probes:
        probes["evaluator"].update(pretrain_config=dict(q["pretrain"]),
                                   period=q["requests"] // 2)
    if "search" in probes:
        probes["search"]["requests"] = q["probe_requests"]
    return c


def check_config(config: dict) -> None:
    """Raise ``ValueError`` naming what is inconsistent in a study config."""
    for key in ("version", "seeds", "requests", "batch", "window", "agents", "blocks", "roles"):
        if key not in config:
            raise ValueError(f"study config lacks {key!r}")
    variants = config.get("variants", {"history": {}})
    seen: dict[tuple, str] = {}
    names = set()
    for block in config["blocks"]:
        name = block.get("name")
        if not name or name in names:
            raise ValueError(f"study block {block!r} needs a unique 'name'")
        names.add(name)
        variant = block.get("variant", "history")
        if variant not in variants:
            raise ValueError(f"block {name!r}: variant {variant!r} is not one of "
                             f"{sorted(variants)}")
        for key in block["agents"]:
            if key not in config["agents"]:
                raise ValueError(f"block {name!r} names agent {key!r}, which is not in the "
                                 f"study's agents {sorted(config['agents'])}")
            for scenario in block["scenarios"]:
                cell = (variant, scenario, key)
                if cell in seen:
                    raise ValueError(f"{key!r} on {scenario!r} ({variant}) is in blocks "
                                     f"{seen[cell]!r} and {name!r}; it would run twice")
                seen[cell] = name


def with_seeds(config: dict, seeds: list[int] | None) -> dict:
    if seeds is None:
        return config
    c = copy.deepcopy(config)
    c["seeds"] = list(seeds)
    return c


# ---------------------------------------------------------------------------------- blocks
@dataclass
class Block:
    name: str
    variant: str
    spec: GridSpec | None  # None: nothing of this block can run here
    keys: dict[str, str] = field(default_factory=dict)  # agent label -> study key
    missing: list[str] = field(default_factory=list)  # what this installation lacks


def _available_scenarios() -> set[str]:
    from ..envs import scenario_names

    return set(scenario_names())


def _available_agents() -> set[str]:
    from ..agents import available_agents

    return set(available_agents())


def _world_ok(scenario: str, world: dict) -> str | None:
    from ..envs import make_config

    try:
        make_config(scenario, **world)
    except (ValueError, TypeError) as exc:
        # the first sentence: world errors go on to list every valid setting
        return str(exc).splitlines()[0].split("; valid")[0]
    return None


def _agent_problem(name: str, config: dict) -> str | None:
    """Why this installation cannot build ``name`` with ``config`` (an unknown key), or None."""
    from ..agents import available_agents
    from ..agents.registry import check_config as check_agent_config

    entry = available_agents()[name]
    factory = entry.factory
    if hasattr(factory, "load") and hasattr(factory, "group"):  # an entry-point plugin
        try:
            factory = factory.load()
        except Exception as exc:  # noqa: BLE001 - reported as a reason, not raised
            return f"plugin failed to import: {exc}"
    try:
        check_agent_config(name, factory, config)
    except ValueError as exc:
        return str(exc).splitlines()[0]
    return None


def plan_blocks(config: dict) -> list[Block]:
    """The grids of the study that this installation can run, and what it cannot."""
    check_config(config)
    scenarios_here = _available_scenarios()
    agents_here = _available_agents()
    variants = config.get("variants", {"history": {}})
    out = []
    for b in config["blocks"]:
        variant = b.get("variant", "history")
        world = {**config.get("world", {}), **variants[variant], **b.get("world", {})}
        missing = []
        scenarios = []
        for s in b["scenarios"]:
            if s not in scenarios_here:
                missing.append(f"scenario {s}")
                continue
            problem = _world_ok(s, {**world, **config.get("scenario_world", {}).get(s, {})})
            if problem:
                missing.append(f"world setting for {s}: {problem}")
                continue
            scenarios.append(s)
        agents, keys = [], {}
        for key in b["agents"]:
            entry = config["agents"][key]
            if entry["name"] not in agents_here:
                missing.append(f"agent {entry['name']}")
                continue
            cfg = dict(entry.get("config") or {})
            problem = _agent_problem(entry["name"], cfg)
            if problem:
                missing.append(f"agent config of {key}: {problem}")
                continue
            agents.append((entry["name"], cfg))
            keys[agent_label(entry["name"], cfg)] = key
        spec = None
        if scenarios and agents:
            try:
                spec = GridSpec(
                    scenarios=scenarios, agents=agents, seeds=list(config["seeds"]),
                    requests=config["requests"], batch=config["batch"],
                    window=config["window"], world=world,
                    scenario_world={s: dict(config.get("scenario_world", {})[s])
                                    for s in scenarios
                                    if s in config.get("scenario_world", {})})
                spec.check_agents()
            except ValueError as exc:
                missing.append(f"block settings: {str(exc).splitlines()[0]}")
                spec = None
        out.append(Block(b["name"], variant, spec, keys, missing))
    return out


# ---------------------------------------------------------------------------------- running
def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.system()}


def _read_state(out: Path) -> dict:
    path = out / STUDY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def run_study(out: str | Path = f"runs/study-v{STUDY_VERSION}", *, config: dict | None = None,
              launcher: str = "serial", address: str | None = None, seeds=None,
              quick: bool = False, progress: bool = True, cache_dir=".driftrank_cache",
              retries: int = 1, workers: int | None = None, log=print) -> dict:
    """Run every block and probe of the study into ``out`` (resuming); return the state.

    The state (also ``OUT/study.json``) holds the config, what could not run here and why, and
    the wall time of each invocation. Write the document with :func:`write_study`.
    """
    from .study_probe import run_probes

    config = config or STUDY
    if quick:
        config = quick_config(config)
    config = with_seeds(config, seeds)
    out = Path(out)
    state = _read_state(out)
    if state and canonical_json(state.get("config")) != canonical_json(config):
        raise ValueError(
            f"{str(out)!r} holds a study with different settings (version "
            f"{state.get('config', {}).get('version')}, seeds "
            f"{state.get('config', {}).get('seeds')}); use another --out, or delete "
            f"{out / STUDY_FILE} to reuse the finished cells that still match")
    out.mkdir(parents=True, exist_ok=True)
    blocks = plan_blocks(config)
    start = time.perf_counter()
    runs = state.get("runs", [])

    def save(probe_state: dict, models: dict) -> dict:
        new = {
            "version": config["version"],
            "config": config,
            "quick": quick,
            "machine": _machine(),
            "blocks": {b.name: {"variant": b.variant, "missing": b.missing,
                                "cells": len(b.spec.cells()) if b.spec else 0,
                                "keys": b.keys} for b in blocks},
            "probes": probe_state,
            "models": models,
            "agent_order": list(config["agents"]),  # the JSON file sorts keys
            "runs": runs,
        }
        store.write_json(out / STUDY_FILE, new)  # also before running: --report-only works
        return new

    timings: dict[str, float] = {}
    # This invocation is recorded before any work and updated after each block, so an
    # interrupted run's wall time still counts in the report (it is marked unfinished).
    run = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "wall_s": 0.0,
           "launcher": launcher, "address": address, "parts_s": timings, "failed_cells": 0,
           "finished": False}
    runs.append(run)

    def keep_time() -> None:  # the time so far, in case the run stops before its end
        run.update(wall_s=time.perf_counter() - start, failed_cells=failed)
        save(state.get("probes", {}), state.get("models", {}))

    failed = 0
    keep_time()
    try:
        for block in blocks:
            if block.spec is None:
                log(f"study: block {block.name!r} skipped (missing here: "
                    f"{'; '.join(block.missing) or 'nothing to run'})")
                continue
            n = len(block.spec.cells())
            log(f"study: block {block.name!r} ({block.variant}): {n} cells -> "
                f"{out / GRIDS / block.name} ({launcher})")
            t0 = time.perf_counter()
            try:
                summary = run_grid(block.spec, out / GRIDS / block.name, launcher=launcher,
                                   address=address, retries=retries, progress=progress,
                                   cache_dir=cache_dir,
                                   num_cpus=workers if launcher == "ray" else None)
            except GridError as exc:  # every cell of this block failed: say so, go on
                summary = exc.summary
            timings[f"grid:{block.name}"] = time.perf_counter() - t0
            failed += len(summary.failed)
            keep_time()
            log(f"  {summary}")
        t0 = time.perf_counter()
        probe_state = run_probes(config, out / PROBES, cache_dir=cache_dir, progress=progress,
                                 log=log, launcher=launcher, address=address, workers=workers)
        timings["probes"] = time.perf_counter() - t0
    except BaseException:  # interrupted (Ctrl-C included): keep the time it ran
        keep_time()
        raise
    run.update(wall_s=time.perf_counter() - start, failed_cells=failed, finished=True)
    return save(probe_state, model_metrics(blocks, cache_dir))


MODEL_METRICS = ("evaluator_auc", "evaluator_spearman", "generator_true_reward",
                 "behaviour_true_reward", "reference_true_reward")


def model_metrics(blocks: list[Block], cache_dir) -> dict:
    """Held-out metrics of the offline models each (variant, scenario) served with: how well
    the evaluator ranks (its Spearman with the truth) is what LAST and ReLoop2 lean on.
    Read from the pretraining cache the cells filled (never trains: a missing entry is
    skipped)."""
    from ..agents.pretrained import PretrainConfig, cache_key

    found = {}
    for block in blocks:
        if block.spec is None:
            continue
        for cell in block.spec.cells():
            config = cell.agent_config.get("pretrain_config")
            name = f"{block.variant}/{cell.scenario}"
            if config is None or name in found:
                continue
            try:
                key = cache_key(cell.world_config(), 0, PretrainConfig().replace(**config))
                path = Path(cache_dir) / f"pretrained-{key}" / "metrics.json"
                metrics = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            found[name] = {k: metrics[k] for k in MODEL_METRICS if k in metrics}
    return found


# ---------------------------------------------------------------------------------- loading
def load_study(out: str | Path) -> tuple[pd.DataFrame, dict]:
    """All window rows of the study's blocks with ``key`` (study agent key), ``variant`` and
    ``block`` columns, and the study state. Missing blocks simply contribute no rows."""
    out = Path(out)
    state = _read_state(out)
    if not state:
        raise FileNotFoundError(f"{str(out)!r} holds no study ({STUDY_FILE} missing); run "
                                f"`driftrank study --out {out}` first")
    frames = []
    for name, block in state["blocks"].items():
        folder = out / GRIDS / name
        if not folder.is_dir():
            continue
        df = load_results(folder)
        if df.empty:
            continue
        df["key"] = df["label"].map(block["keys"])
        df["variant"] = block["variant"]
        df["block"] = name
        frames.append(df[df["key"].notna()])
    if not frames:
        return pd.DataFrame(), state
    return pd.concat(frames, ignore_index=True), state


def failures(out: str | Path) -> list[dict]:
    out = Path(out)
    found = []
    for folder in sorted((out / GRIDS).glob("*")) if (out / GRIDS).is_dir() else []:
        found.extend(store.load_failures(folder))
    return found
