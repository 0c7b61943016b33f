"""Latency and throughput of LAST (``driftrank.adapt.last``) next to the plain generator.

Per candidate budget ``P`` (``P - P // 2`` step offsets + ``P // 2`` resamples, see
:func:`~driftrank.adapt.last.budget_split`; ``P = 8`` is the default search) and backend:

- batch-1 latency p50 / p99 (ms) over ``repeats`` calls;
- batch-64 throughput (requests/s) from the median time of ``large_repeats`` calls (and, for
  the Ray backend, also pipelined with ``search_many``);
- the same for the plain generator greedy (the baseline columns).

Models are untrained (random weights): latency does not depend on training, only on the
sizes (N=50 candidates, K=10, hidden 64 by default). Timings are wall-clock on this machine
with ``threads`` torch threads in the driver (Ray actors use 1 thread each); on a shared
machine they are noisy, so compare columns of one run. Timing lives here, never in tests.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..adapt.backends import LocalBackend, RayBackend
from ..adapt.last import LastSearch
from ..adapt.requests import budget_split
from ..evaluator.config import EvaluatorConfig
from ..evaluator.model import ListwiseEvaluator
from ..generator.config import GeneratorConfig
from ..generator.model import SlateGenerator

__all__ = ["bench_last"]

BACKENDS = ("local", "ray")


def _requests(n: int, b: int, sizes: dict, seed: int) -> list[tuple]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        out.append(
            (
                torch.randn(b, sizes["user_dim"], generator=g).numpy(),
                torch.randn(b, sizes["n_candidates"], sizes["item_dim"], generator=g).numpy(),
                torch.randint(0, 10**9, (b, sizes["n_candidates"]), generator=g).numpy(),
            )
        )
    return out


def _latencies(fn, requests: list[tuple], repeats: int, warmup: int) -> np.ndarray:
    for i in range(warmup):
        fn(*requests[i % len(requests)], i)
    out = np.empty(repeats)
    for i in range(repeats):
        req = requests[i % len(requests)]
        t0 = time.perf_counter()
        fn(*req, i)
        out[i] = time.perf_counter() - t0
    return out


def bench_last(
    P_values=(0, 4, 8, 16),  # noqa: N803 (the issue's name for the candidate budget)
    backends=BACKENDS,
    threads: int = 1,
    *,
    mode: str = "activation",
    batch_large: int = 64,
    repeats: int = 200,
    large_repeats: int = 20,
    warmup: int = 10,
    ray_actors: int = 2,
    ray_cpus_per_actor: float = 1.0,
    n_candidates: int = 50,
    slate_size: int = 10,
    user_dim: int = 30,
    item_dim: int = 32,
    hidden: int = 64,
    seed: int = 0,
) -> list[dict]:
    """One row per (method, backend, P): ``{"method", "backend", "P", "mode", "b1_p50_ms",
    "b1_p99_ms", "b64_ms", "b64_rps", "b64_pipelined_rps" (Ray only), "x_greedy_b1"
    (p50 / the greedy's p50), "x_greedy_b64" (the greedy's throughput / this one's),
    "greedy_b1_p50_ms", "greedy_b64_rps", "threads", "torch_version"}``. ``method`` is
    ``generator_greedy`` (baseline) or ``last``; ``b64`` stands for
    ``batch_large``. The torch thread count is restored afterwards; a Ray session started here
    is shut down at the end.
    """
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
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
            return {
                "method": method,
                "backend": backend,
                "P": p,
                "mode": mode if method != "generator_greedy" else "-",
                "b1_p50_ms": float(np.median(lat) * 1e3),
                "b1_p99_ms": float(np.quantile(lat, 0.99) * 1e3),
                "b64_ms": float(np.median(large_s) * 1e3),
                "b64_rps": float(batch_large / np.median(large_s)),
                **extra,
            }

        def greedy(u, c, i, _):
            with torch.inference_mode():
                return gen.greedy(u, c, i)

        base = row(
            "generator_greedy",
            "local",
            0,
            _latencies(greedy, small, repeats, warmup),
            _latencies(greedy, large, large_repeats, 2),
        )
        rows.append(base)

        for backend in backends:
            if backend == "ray":
                import ray

                if not ray.is_initialized():
                    ray.init(include_dashboard=False, log_to_driver=False)
                    started_ray = True
            for p in P_values:
                steps, resamples = budget_split(p)
                kw = dict(mode=mode, steps=steps, resamples=resamples, seed=seed)
                if mode == "serial":
                    kw.update(steps=(), serial_steps=p - p // 2)
                for method in ("last",):
                    search = LastSearch(gen, ev, **kw)
                    if backend == "local":
                        be = LocalBackend(search)
                    else:
                        be = RayBackend.from_search(
                            search, n_actors=ray_actors, num_cpus_per_actor=ray_cpus_per_actor
                        )
                    try:

                        def call(u, c, i, k, be=be):
                            return be.search(u, c, i, batch_index=k)

                        lat = _latencies(call, small, repeats, warmup)
                        large_s = _latencies(call, large, large_repeats, 2)
                        extra = {}
                        if backend == "ray":
                            reqs = [(*large[k % len(large)], k) for k in range(large_repeats)]
                            t0 = time.perf_counter()
                            for _ in be.search_many(reqs):
                                pass
                            extra["b64_pipelined_rps"] = (
                                large_repeats * batch_large / (time.perf_counter() - t0)
                            )
                        rows.append(row(method, backend, p, lat, large_s, **extra))
                    finally:
                        be.close()
    finally:
        torch.set_num_threads(old_threads)
        if started_ray:
            import ray

            ray.shutdown()
    for r in rows:
        r["greedy_b1_p50_ms"] = base["b1_p50_ms"]
        r["greedy_b64_rps"] = base["b64_rps"]
        r["x_greedy_b1"] = r["b1_p50_ms"] / base["b1_p50_ms"]
        r["x_greedy_b64"] = base["b64_rps"] / r["b64_rps"]
        r["threads"] = threads
        r["torch_version"] = torch.__version__
    return rows


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of :func:`bench_last` rows."""
    cols = (
        "method",
        "backend",
        "P",
        "b1_p50_ms",
        "b1_p99_ms",
        "x_greedy_b1",
        "b64_rps",
        "x_greedy_b64",
        "b64_pipelined_rps",
    )
    lines = ["  ".join(f"{c:>17}" for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:>17.2f}" if isinstance(v, float) else f"{v!s:>17}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":  # python -m driftrank.adapt.bench_last
    print(format_rows(bench_last()))
