"""Benchmark: wall time of one fixed grid, serially and on Ray (``driftrank bench grid``)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..adapt.ray_session import ray_session
from .grid import GridSpec, run_grid
from .launch_ray import GET_TIMEOUT_S, warm_worker
from .threads import start_of_work


def bench_grid(cells: int = 4, requests: int = 20_480, batch: int = 256, workers: int = 2,
               scenario: str = "stationary", agent: str = "random",
               world: dict | None = None, address: str | None = None) -> dict:
    """Wall time of one fixed grid run serially and on Ray with ``workers`` CPUs.

    The grid is ``cells`` seeds of (``scenario``, ``agent``); each cell serves ``requests``.
    Ray start-up (starting Ray plus one warm-up task per CPU, so workers have imported torch
    and driftrank) is timed separately (``ray_start_s``) from the grid itself. If Ray is already
    initialised, that session is used (and ``workers`` is whatever it has).
    """
    import ray

    spec = GridSpec(scenarios=[scenario], agents=[agent], seeds=list(range(cells)),
                    requests=requests, batch=batch, window=requests, world=dict(world or {}))
    spec.check_agents()
    start_of_work(1)  # imports torch now, not inside the timed serial run
    with tempfile.TemporaryDirectory(prefix="driftrank-bench-") as tmp:
        t0 = time.perf_counter()
        run_grid(spec, Path(tmp) / "serial", launcher="serial", progress=False)
        serial_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        with ray_session(address, workers):
            cpus = ray.cluster_resources().get("CPU", 0.0)
            warm = ray.remote(warm_worker).options(num_cpus=1)
            ray.get([warm.remote() for _ in range(max(1, int(cpus)))], timeout=GET_TIMEOUT_S)
            ray_start_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_grid(spec, Path(tmp) / "ray", launcher="ray", progress=False)
            ray_s = time.perf_counter() - t0
    return {
        "cells": cells, "requests_per_cell": requests, "batch": batch,
        "ray_cpus": cpus, "serial_s": serial_s, "ray_s": ray_s, "ray_start_s": ray_start_s,
        "speedup": serial_s / ray_s, "speedup_with_start": serial_s / (ray_s + ray_start_s),
    }
