"""Throughput of the ReLoop2 error memory, and its query time against exact kNN (faiss).

What it measures (one thread, ``time.perf_counter``, medians):

* ``writes_per_s``: ``ErrorMemory.write`` of batches of ``batch`` random keys while the memory is
  filled with ``n_stored`` samples (the median over all those batches: write cost does not
  depend on how full the memory is, its size is constant).
* ``reads_per_s`` / ``compensates_per_s``: ``read`` (full per-array read-out) and
  ``compensate`` (what serving calls) on ``repeats`` fresh query batches of ``batch`` keys.
* ``faiss_*``: the same query batch against ``faiss.IndexFlatIP`` holding the ``n_stored`` keys
  (exact inner-product kNN, ``k = faiss_k``): the cost of the obvious alternative, a memory that
  keeps every key and searches it. Reported as None when ``import faiss`` fails (faiss-cpu is an
  optional dependency: ``pip install faiss-cpu``).

Run ``python experiments/bench_memory.py`` (or ``python -m driftrank.experiments.bench_memory``)
for a small table. As a script it pins BLAS to one thread before numpy loads; called as a
function it uses ``threadpoolctl`` when installed and otherwise reports the BLAS thread setting
it found, so the figures say what they measured.
"""

from __future__ import annotations

import os
import platform
import time

if __name__ == "__main__":  # must happen before numpy loads its BLAS
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import contextlib  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..adapt.error_memory import ErrorMemory  # noqa: E402
from .timing import median_seconds  # noqa: E402

__all__ = ["bench_memory"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _one_thread() -> tuple[contextlib.AbstractContextManager[Any], str]:
    """A context limiting BLAS to one thread, and a note saying how (or that it could not)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        found = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
        if found == "1":
            return contextlib.nullcontext(), "1 (OPENBLAS_NUM_THREADS=1)"
        return contextlib.nullcontext(), (
            f"not limited (OPENBLAS_NUM_THREADS={found}; install threadpoolctl or set it to 1 "
            f"before numpy is imported)"
        )
    return threadpool_limits(limits=1), "1 (threadpoolctl)"


def bench_memory(
    batch: int = 4096,
    key_dim: int = 80,
    n_bits: int = 10,
    n_arrays: int = 32,
    n_stored: int = 1_000_000,
    repeats: int = 9,
    *,
    with_faiss: bool = True,
    faiss_k: int = 10,
    faiss_repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure write/read throughput of ``ErrorMemory`` and compare a query batch with faiss.

    The defaults are what the memory agents (``reloop2``, ``last+reloop2``) build: keys of the
    evaluator's 64 hidden units plus 16 item-id dimensions, ``L = 10`` bits, ``R = 32`` arrays.

    Returns a flat dict (figures in samples per second and milliseconds per batch; faiss
    entries None when faiss is unavailable or ``with_faiss`` is False, see ``faiss_note``).
    """
    if batch < 1 or n_stored < 1 or repeats < 1 or faiss_repeats < 1:
        raise ValueError("batch, n_stored, repeats and faiss_repeats must all be >= 1")
    rng = np.random.default_rng(seed)
    mem = ErrorMemory(key_dim, n_bits=n_bits, n_arrays=n_arrays, seed=seed)

    faiss: Any = None
    faiss_note = "disabled (with_faiss=False)"
    if with_faiss:
        try:
            import faiss  # type: ignore[import-not-found,no-redef]

            faiss_note = (
                f"faiss {getattr(faiss, '__version__', '?')} IndexFlatIP, exact, k={faiss_k}"
            )
        except ImportError:
            faiss_note = "faiss not installed (pip install faiss-cpu): comparison skipped"
    stored = np.empty((n_stored, key_dim), dtype=np.float32) if faiss is not None else None

    limit, threads_note = _one_thread()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the hashing matmul runs in torch (see ErrorMemory._index)
    with limit:
        if faiss is not None:
            faiss.omp_set_num_threads(1)
        # fill: time every write batch (key generation excluded)
        write_times = []
        for lo in range(0, n_stored, batch):
            hi = min(lo + batch, n_stored)
            keys = rng.standard_normal((hi - lo, key_dim), dtype=np.float32)
            y = (rng.random(hi - lo) < 0.3).astype(np.float64)
            y_base = rng.random(hi - lo)
            if stored is not None:
                stored[lo:hi] = keys
            t0 = time.perf_counter()
            mem.write(keys, y, y_base)
            if hi - lo == batch:
                write_times.append(time.perf_counter() - t0)
        if not write_times:  # n_stored < batch: time full batches on top
            keys = rng.standard_normal((batch, key_dim), dtype=np.float32)
            y, y_base = rng.random(batch), rng.random(batch)
            write_times = [median_seconds(lambda: mem.write(keys, y, y_base), repeats)]
        t_write = float(np.median(write_times))

        queries = [rng.standard_normal((batch, key_dim), dtype=np.float32) for _ in range(2)]
        q_base = rng.random(batch)
        mem.read(queries[1])  # warm the scratch buffers
        mem.compensate(queries[1], q_base)
        t_read = median_seconds(lambda: mem.read(queries[0]), repeats)
        t_comp = median_seconds(lambda: mem.compensate(queries[0], q_base), repeats)

        t_faiss = None
        if faiss is not None:
            index = faiss.IndexFlatIP(key_dim)
            index.add(stored)
            del stored
            index.search(queries[1][:64], faiss_k)  # warm-up
            t_faiss = median_seconds(lambda: index.search(queries[0], faiss_k), faiss_repeats)

    torch.set_num_threads(torch_threads)
    return {
        "batch": batch,
        "key_dim": key_dim,
        "n_bits": n_bits,
        "n_arrays": n_arrays,
        "n_stored": n_stored,
        "memory_nbytes": mem.nbytes,
        "writes_per_s": batch / t_write,
        "reads_per_s": batch / t_read,
        "compensates_per_s": batch / t_comp,
        "write_batch_ms": 1e3 * t_write,
        "read_batch_ms": 1e3 * t_read,
        "compensate_batch_ms": 1e3 * t_comp,
        "faiss_note": faiss_note,
        "faiss_k": faiss_k if t_faiss is not None else None,
        "faiss_index_nbytes": n_stored * key_dim * 4 if t_faiss is not None else None,
        "faiss_query_batch_ms": None if t_faiss is None else 1e3 * t_faiss,
        "faiss_queries_per_s": None if t_faiss is None else batch / t_faiss,
        "read_speedup_vs_faiss": None if t_faiss is None else t_faiss / t_read,
        "threads": f"BLAS {threads_note}; torch 1",
        "cpu": _cpu_model(),
        "numpy": np.__version__,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e3 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--key-dim", type=int, default=80)
    ap.add_argument("--n-bits", type=int, nargs="+", default=[10, 12])
    ap.add_argument("--n-arrays", type=int, default=32)
    ap.add_argument("--n-stored", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--no-faiss", action="store_true", help="skip the faiss comparison")
    args = ap.parse_args()

    results = []
    for i, n_bits in enumerate(args.n_bits):
        results.append(
            bench_memory(
                batch=args.batch,
                key_dim=args.key_dim,
                n_bits=n_bits,
                n_arrays=args.n_arrays,
                n_stored=args.n_stored,
                repeats=args.repeats,
                with_faiss=not args.no_faiss and i == 0,  # faiss does not depend on L
            )
        )
    t_faiss = results[0]["faiss_query_batch_ms"]
    for res in results[1:]:  # same query batch size: compare every L with the one faiss run
        for key in ("faiss_k", "faiss_index_nbytes", "faiss_query_batch_ms", "faiss_queries_per_s"):
            res[key] = results[0][key]
        res["read_speedup_vs_faiss"] = None if t_faiss is None else t_faiss / res["read_batch_ms"]
    rows = [k for k in results[0] if k not in ("faiss_note", "threads", "cpu", "numpy")]
    width = max(map(len, rows))
    header = f"{'':<{width}}" + "".join(f"{'L=' + str(r['n_bits']):>16}" for r in results)
    print(header)
    for key in rows:
        print(f"{key:<{width}}" + "".join(f"{_fmt(r[key]):>16}" for r in results))
    for key in ("faiss_note", "threads", "cpu", "numpy"):
        print(f"{key}: {results[0][key]}")


if __name__ == "__main__":
    _main()
