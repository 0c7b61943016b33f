"""Latency and throughput of serving-time adaptation next to the plain generator.

Per method, candidate budget ``P`` and backend:

- ``generator_greedy``: the baseline, what serving costs without adapting;
- ``last``: the LAST search (``P - P // 2`` step offsets + ``P // 2`` resamples, see
  :func:`~driftrank.adapt.requests.budget_split`; ``P = 8`` is the default);
- ``best-of-n``: greedy + ``P`` samples, no gradient (LAST's control);
- ``flagship``: LAST judged by a :class:`~driftrank.adapt.compensated.CompensatedEvaluator`
  whose memory holds ``memory_fill`` samples (on Ray its snapshot travels with each call, as in
  ``last+reloop2``; a fresh write before every large call makes the snapshot change each time).

Columns: batch-1 latency p50 / p99 (ms) over ``repeats`` calls; batch-``batch_large``
throughput (requests/s) from the median of ``large_repeats`` calls (and, on Ray, pipelined with
``search_many``). Local rows also give the same figures in CPU time of the calling thread
(``*_cpu_*``): everything runs on that one thread, so on a shared machine this is close to what
an idle core would show, while wall-clock figures grow with the other load.
Models are untrained (latency depends on sizes, not on training: N=50
candidates, K=10, hidden 64 by default). Wall-clock on this machine with ``threads`` torch
threads in the driver (Ray actors use 1 thread each); on a shared machine the figures are
noisy, so compare columns of one run. Timing lives here, never in tests.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..adapt.backends import LocalBackend
from ..adapt.compensated import CompensatedEvaluator
from ..adapt.last import LastSearch
from ..adapt.ray_backend import RayBackend
from ..adapt.ray_session import start_ray
from ..adapt.requests import budget_split
from ..evaluator.config import EvaluatorConfig
from ..evaluator.model import ListwiseEvaluator
from ..generator.config import GeneratorConfig
from ..generator.model import SlateGenerator

__all__ = ["bench_last", "format_rows"]

BACKENDS = ("local", "ray")
METHODS = ("last", "best-of-n", "flagship")


def _requests(n: int, b: int, sizes: dict, seed: int) -> list[tuple]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, sizes["user_dim"], generator=g).numpy(),
             torch.randn(b, sizes["n_candidates"], sizes["item_dim"], generator=g).numpy(),
             torch.randint(0, 10**9, (b, sizes["n_candidates"]), generator=g).numpy())
            for _ in range(n)]


def _latencies(fn, requests: list[tuple], repeats: int, warmup: int) -> np.ndarray:
    """(2, repeats) seconds per call: wall clock, and CPU time of this thread."""
    for i in range(warmup):
        fn(*requests[i % len(requests)], i)
    out = np.empty((2, repeats))
    for i in range(repeats):
        req = requests[i % len(requests)]
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(*req, i)
        out[:, i] = time.perf_counter() - t0, time.thread_time() - c0
    return out


def _fill(comp: CompensatedEvaluator, requests: list[tuple], n: int) -> None:
    """Write about ``n`` labelled impressions of random slates into ``comp``'s memory."""
    rng = np.random.default_rng(0)
    done = 0
    while done < n:
        user, cand, ids = requests[done % len(requests)]
        b, k = len(user), comp.evaluator.config.slate_size
        pick = np.argsort(rng.random((b, cand.shape[1])), axis=1)[:, :k]
        rows = np.arange(b)[:, None]
        comp.observe(user, cand[rows, pick], ids[rows, pick], rng.random((b, k)) < 0.1)
        done += b * k


def bench_last(
    P_values=(8,),  # noqa: N803 (the issue's name for the candidate budget)
    backends=BACKENDS,
    threads: int = 1,
    *,
    methods=METHODS,
    mode: str = "activation",
    batch_large: int = 256,
    repeats: int = 200,
    large_repeats: int = 10,
    warmup: int = 10,
    ray_actors: int = 2,
    ray_cpus_per_actor: float = 1.0,
    memory_fill: int = 100_000,
    n_candidates: int = 50,
    slate_size: int = 10,
    user_dim: int = 30,
    item_dim: int = 32,
    hidden: int = 64,
    seed: int = 0,
) -> list[dict]:
    """One row per (method, backend, P): ``{"method", "backend", "P", "b1_p50_ms",
    "b1_p99_ms", "bL_ms", "bL_rps", "x_greedy_b1" (p50 / the greedy's p50), "batch_large",
    "threads", "torch_version"}``, plus ``"bL_pipelined_rps"`` on Ray and ``"b1_cpu_p50_ms"``,
    ``"x_greedy_b1_cpu"``, ``"bL_cpu_rps"`` locally. The torch thread count is restored
    afterwards; a Ray session started here is shut down at the end.
    """
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    bad = set(methods) - set(METHODS)
    if bad:
        raise ValueError(f"unknown methods {sorted(bad)}; choose from {METHODS}")
    if repeats < 1 or large_repeats < 1 or batch_large < 1:
        raise ValueError("repeats, large_repeats and batch_large must be >= 1")
    for p in P_values:
        budget_split(p)  # validates
    sizes = dict(n_candidates=n_candidates, user_dim=user_dim, item_dim=item_dim)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started_ray = False
    rows: list[dict] = []
    try:
        gen = SlateGenerator(GeneratorConfig(user_dim, item_dim, slate_size, hidden=hidden))
        ev = ListwiseEvaluator(EvaluatorConfig(user_dim, item_dim, slate_size, hidden=hidden))
        gen.eval()
        ev.eval()
        small = _requests(16, 1, sizes, seed)
        large = _requests(4, batch_large, sizes, seed + 1)

        def row(method, backend, p, lat, large_s, **extra):
            (lat, lat_cpu), (large_s, large_cpu) = lat, large_s
            out = {"method": method, "backend": backend, "P": p,
                   "b1_p50_ms": float(np.median(lat) * 1e3),
                   "b1_p99_ms": float(np.quantile(lat, 0.99) * 1e3),
                   "bL_ms": float(np.median(large_s) * 1e3),
                   "bL_rps": float(batch_large / np.median(large_s)), **extra}
            if backend == "local":  # all work on this thread: its CPU time ignores other load
                out["b1_cpu_p50_ms"] = float(np.median(lat_cpu) * 1e3)
                out["bL_cpu_rps"] = float(batch_large / np.median(large_cpu))
            return out

        def greedy(u, c, i, _):
            with torch.inference_mode():
                return gen.greedy(u, c, i)

        base = row("generator_greedy", "local", 0, _latencies(greedy, small, repeats, warmup),
                   _latencies(greedy, large, large_repeats, 2))
        rows.append(base)
        for backend in backends:
            if backend == "ray":
                started_ray = start_ray(log_to_driver=False) or started_ray
            for p in P_values:
                steps, resamples = budget_split(p)
                for method in methods:
                    judge = None
                    if method == "flagship":
                        judge = CompensatedEvaluator(ev, n_bits=10, n_arrays=32)
                        _fill(judge, large, memory_fill)
                    kw = dict(mode=mode, steps=steps, resamples=resamples, seed=seed)
                    if method == "best-of-n":
                        kw.update(steps=(), resamples=p)
                    search = LastSearch(gen, ev, judge=judge, **kw)
                    be = (LocalBackend(search) if backend == "local" else RayBackend.from_search(
                        search, n_actors=ray_actors, num_cpus_per_actor=ray_cpus_per_actor))
                    memory = None if judge is None else judge.memory
                    try:
                        def call(u, c, i, k, be=be, memory=memory):
                            return be.search(u, c, i, batch_index=k, memory=memory)

                        def call_fresh(u, c, i, k, be=be, judge=judge):
                            if judge is not None:  # a changed memory: a new snapshot per call
                                _fill(judge, small, 10)
                            return call(u, c, i, k)

                        lat = _latencies(call, small, repeats, warmup)
                        large_s = _latencies(call_fresh, large, large_repeats, 2)
                        extra = {}
                        if backend == "ray":
                            reqs = [(*large[k % len(large)], k) for k in range(large_repeats)]
                            t0 = time.perf_counter()
                            if judge is None:
                                for _ in be.search_many(reqs):
                                    pass
                                extra["bL_pipelined_rps"] = (
                                    large_repeats * batch_large / (time.perf_counter() - t0))
                        rows.append(row(method, backend, p, lat, large_s, **extra))
                    finally:
                        be.close()
    finally:
        torch.set_num_threads(old_threads)
        if started_ray:
            import ray

            ray.shutdown()
    for r in rows:
        r["x_greedy_b1"] = r["b1_p50_ms"] / base["b1_p50_ms"]
        if "b1_cpu_p50_ms" in r:
            r["x_greedy_b1_cpu"] = r["b1_cpu_p50_ms"] / base["b1_cpu_p50_ms"]
        r["batch_large"] = batch_large
        r["threads"] = threads
        r["torch_version"] = torch.__version__
    return rows


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of :func:`bench_last` rows."""
    cols = ("method", "backend", "P", "b1_p50_ms", "b1_p99_ms", "x_greedy_b1", "bL_rps",
            "bL_pipelined_rps", "b1_cpu_p50_ms", "x_greedy_b1_cpu", "bL_cpu_rps")
    lines = ["  ".join(f"{c:>17}" for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:>17.2f}" if isinstance(v, float) else f"{v!s:>17}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":  # python -m driftrank.experiments.bench_adapt
    print(format_rows(bench_last()))
