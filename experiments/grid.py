"""Grids of cells, run serially or as Ray tasks, resumable and never silently lossy.

::

    spec = GridSpec(scenarios=["stationary", "abrupt-shift"],
                    agents=["random", ("last", {"steps": 4})], seeds=[0, 1, 2])
    summary = run_grid(spec, "runs/main", launcher="ray")     # or launcher="serial"
    df = load_results("runs/main")

:func:`run_grid`

1. checks the whole spec up front (scenarios, world settings, agent names, config keys and
   values), so a typo fails in a second instead of in every cell;
2. writes ``RUN_DIR/grid.json`` and skips cells whose results are already stored (a re-run of
   the same command resumes);
3. prepares each agent once per (world config, seed) in the driver (:mod:`.prepare`);
4. runs the remaining cells: in-process one after another (``serial``), or one Ray task per cell
   (``ray``: a local Ray, ``address=`` for a running cluster, or the session already
   initialised), both through one retry-and-record loop (:mod:`.launch`);
5. writes every finished cell atomically as results arrive; retries a failed cell ``retries``
   times, then records it in ``failed/<cell_id>.json`` and lists it in the returned
   :class:`GridSummary` (cells that needed a retry are listed too).

It raises :class:`GridError` only if no cell of the grid has results (every cell failed).

On a multi-node cluster the workers must be able to import driftrank and any plugin agents
(install them on every node, or pass ``runtime_env``, e.g. ``{"py_modules": [...]}`` or
``{"pip": [...]}``), and ``cache_dir`` should be on storage every node can read. Agents
registered in the driver's own script with ``@register_agent`` are sent with the tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from . import store
from .cell import CellSpec, check_int
from .grid_spec import GridSpec
from .grid_summary import GridError, GridSummary
from .launch import CellRecorder, run_serial
from .launch_ray import run_ray
from .prepare import prepare_grid
from .progress import CellProgress
from .results import load_results

__all__ = ["GridError", "GridSpec", "GridSummary", "LAUNCHERS", "load_results", "run_grid"]

LAUNCHERS = ("serial", "ray")


def check_positive(name: str, value) -> float:
    """``value`` if it is a number > 0 (fractions allowed), else ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name}={value!r} must be a number > 0")
    return value


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
    Ray, or connects to ``address``; an initialised session is reused).
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
    retries = check_int("retries", retries, 0)
    threads = check_int("threads", threads, 1)
    check_positive("num_cpus_per_cell", num_cpus_per_cell)
    if num_cpus is not None:
        num_cpus = check_int("num_cpus", num_cpus, 1)
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

    todo = prepare_grid(todo, cache_dir, threads, launcher, run_dir, summary, progress)
    if todo:
        with CellProgress(len(todo), progress, "cells", kinds=[c.label for c in todo]) as bar:
            recorder = CellRecorder(run_dir, launcher, retries, summary, bar)
            if launcher == "serial":
                run_serial(todo, recorder, cache_dir, threads)
            else:
                run_ray(todo, recorder, cache_dir, threads, address=address,
                        num_cpus_per_cell=num_cpus_per_cell, runtime_env=runtime_env,
                        num_cpus=num_cpus, ray_options=ray_options)
    summary.wall_s = time.perf_counter() - start
    if summary.failed and not summary.completed and not summary.skipped:
        raise GridError(f"every cell failed\n{summary}", summary)
    return summary
