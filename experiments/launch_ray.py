"""The Ray launcher: one Ray task per cell, results recorded as they arrive.

Retries are ours (:class:`~.launch.CellRecorder`, the same rule as serially), so Ray's own are
off. Agents registered only in the driver's script (``@register_agent`` outside driftrank) are
shipped to the workers with the tasks (:func:`shipped_factories`); installed plugins are found
by the workers through their entry points. Every wait has a timeout; an interrupted driver
cancels what is still running (finished cells are on disk already).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..adapt.ray_session import ray_session
from ..agents import available_agents, register_agent
from .cell import CellSpec
from .launch import CellRecorder, timed_cell
from .threads import start_of_work

#: seconds ``ray.wait`` blocks before the progress bar is refreshed
WAIT_TIMEOUT_S = 1.0
#: seconds ``ray.get`` may take for a result that ``ray.wait`` reported ready
GET_TIMEOUT_S = 120.0


def _ray_cell_task(spec_dict: dict, cache_dir: str, threads: int, shipped: dict):
    """One cell on a Ray worker; returns its DataFrame with the worker's ``node_id``."""
    import ray

    for name, (factory, description) in shipped.items():
        register_agent(name, description)(factory)
    df = timed_cell(CellSpec.from_dict(spec_dict), cache_dir, threads)
    df["node_id"] = ray.get_runtime_context().get_node_id()
    return df


def warm_worker() -> None:
    """Import what a cell needs (torch included), so timed work does not pay worker start-up."""
    start_of_work(1)


def shipped_factories(names) -> dict[str, tuple[Any, str]]:
    """Agents registered in-process outside driftrank (a script's ``@register_agent``): the
    workers cannot find them by import, so they travel with the tasks."""
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


def _ray_traceback(exc: BaseException) -> str:
    text = str(exc)  # a RayTaskError's text holds the worker's traceback
    if "Traceback" in text:
        return text
    return "".join(traceback.format_exception(exc))


def run_ray(todo: list[CellSpec], recorder: CellRecorder, cache_dir: Path, threads: int, *,
            address: str | None, num_cpus_per_cell: float, runtime_env: dict | None,
            num_cpus: int | None,
            ray_options: dict | Callable[[CellSpec], dict] | None) -> None:
    """Every cell as a Ray task (a session started here is shut down at the end)."""
    import ray

    with ray_session(address, num_cpus, runtime_env) as started_here:
        shipped = shipped_factories(c.agent for c in todo)
        try:
            shipped_ref = ray.put(shipped)
        except Exception as exc:
            raise ValueError(
                f"agent(s) {sorted(shipped)} are registered in this process only and could not "
                f"be sent to Ray workers ({exc}); make them importable (an installed module or "
                "an entry point) or use launcher='serial'") from exc
        task = ray.remote(_ray_cell_task)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        recorder.bar.slots = max(1, min(len(todo), int(cpus // num_cpus_per_cell)))
        pending: dict[Any, CellSpec] = {}

        def submit(cell: CellSpec) -> None:
            extra = ray_options(cell) if callable(ray_options) else (ray_options or {})
            opts = ray_task_options(num_cpus_per_cell, runtime_env, started_here, extra)
            pending[task.options(**opts).remote(cell.to_dict(), str(cache_dir), threads,
                                                shipped_ref)] = cell

        for cell in todo:
            submit(cell)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_TIMEOUT_S)
                if not ready:
                    recorder.bar.refresh()
                    continue
                for ref in ready:
                    cell = pending.pop(ref)
                    try:
                        df = ray.get(ref, timeout=GET_TIMEOUT_S)
                    except Exception as exc:
                        if recorder.failed(cell, exc, _ray_traceback(exc)):
                            submit(cell)
                    else:
                        recorder.finished(cell, df)
        except BaseException:
            for ref in pending:  # interrupted: finished cells are on disk already
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort
                    pass
            raise
