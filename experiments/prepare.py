"""The driver's preparation step: each agent's ``prepare(context, ...)`` once per world.

Agents that share artifacts across cells (the pretrained checkpoints of the model-based
agents) build them in ``prepare``, in the driver, before any cell starts: once per (agent,
world config, seed, prepare arguments), not once per cell or per Ray worker. Keys of the agent's
config that ``prepare`` accepts by name (e.g. ``pretrain_config``) are passed to it. Threads
are set here, the boundary of this work.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from pathlib import Path

from ..agents import AgentContext, find_factory
from . import store
from .cell import CellSpec, canonical_json
from .grid_summary import GridSummary, failure_record, one_line
from .progress import CellProgress
from .threads import start_of_work


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


def _jobs(cells: list[CellSpec]) -> dict[tuple, tuple[Callable, dict, list[CellSpec]]]:
    """(agent, world config, seed, arguments) -> (prepare, its kwargs, the cells needing it)."""
    jobs: dict[tuple, tuple[Callable, dict, list[CellSpec]]] = {}
    for cell in cells:
        prepare = getattr(find_factory(cell.agent), "prepare", None)
        if callable(prepare):
            kwargs = prepare_kwargs(prepare, cell.agent_config)
            key = (cell.agent, cell.world_config(), cell.seed, canonical_json(kwargs))
            jobs.setdefault(key, (prepare, kwargs, []))[2].append(cell)
    return jobs


def prepare_cell(cell: CellSpec, cache_dir: str | Path, threads: int, log=None) -> None:
    """Run the preparation one cell needs (``driftrank run``); errors propagate. ``log``
    is told before work that may take a while (pretraining), so a command is not silent."""
    start_of_work(threads)
    for (_, world, seed, _), (prepare, kwargs, _) in _jobs([cell]).items():
        if log is not None:
            log(f"preparing agent {cell.agent!r} (pretrained models are built once per world "
                f"and cached in {cache_dir}; the first time takes a while)")
        prepare(AgentContext(world=world, seed=seed, cache_dir=Path(cache_dir),
                             threads=threads), **kwargs)


def prepare_grid(todo: list[CellSpec], cache_dir: Path, threads: int, launcher: str,
                 run_dir: Path, summary: GridSummary, progress: bool) -> list[CellSpec]:
    """Prepare every job of ``todo`` once; record the cells whose preparation failed as
    failed (with the traceback) and return the others."""
    jobs = _jobs(todo)
    if not jobs:
        return todo
    start_of_work(threads)
    broken: set[str] = set()
    with CellProgress(len(jobs), progress, "prepare", unit="job") as bar:
        for (name, world, seed, _), (prepare, kwargs, cells) in jobs.items():
            context = AgentContext(world=world, seed=seed, cache_dir=cache_dir, threads=threads)
            try:
                prepare(context, **kwargs)
            except Exception as exc:
                err = [(f"prepare() of agent {name!r} failed: {one_line(exc)}",
                        traceback.format_exc())]
                for cell in cells:
                    record = failure_record(cell, launcher, "prepare", err)
                    store.write_failure(run_dir, cell.cell_id, record)
                    summary.failed.append(record)
                    broken.add(cell.cell_id)
            bar.finished(failed=False)
    return [c for c in todo if c.cell_id not in broken]
