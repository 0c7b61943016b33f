"""``driftrank bench``: benchmarks whose figures go in the README."""

from __future__ import annotations

import sys
import time

from .cli_args import one_world, positive_float, positive_int, table
from .threads import start_of_work

#: threads of the timed pretraining in ``bench models`` (as the README's figure)
PRETRAIN_THREADS = 2


def _bench_env(args) -> None:
    from .bench_env import bench_env

    print(table(bench_env(scenario=args.scenario, min_seconds=args.seconds)))


def _bench_grid(args) -> None:
    from .bench_grid import bench_grid

    r = bench_grid(cells=args.cells, requests=args.requests, batch=args.batch,
                   workers=args.workers, scenario=args.scenario, agent=args.agent,
                   world=one_world(args.world, "bench grid"), address=args.address)
    print(f"grid: {r['cells']} cells x {r['requests_per_cell']:,} requests "
          f"(batch {r['batch']}), Ray CPUs {r['ray_cpus']:g}")
    print(table([
        {"launcher": "serial", "wall_s": f"{r['serial_s']:.2f}", "speedup": "1.00"},
        {"launcher": "ray", "wall_s": f"{r['ray_s']:.2f}", "speedup": f"{r['speedup']:.2f}"},
        {"launcher": "ray incl. start", "wall_s": f"{r['ray_s'] + r['ray_start_s']:.2f}",
         "speedup": f"{r['speedup_with_start']:.2f}"},
    ]))
    print(f"speedup (Ray vs serial): {r['speedup']:.2f}x")


def _bench_models(args) -> None:
    from ..agents.pretrained import PretrainConfig, pretrain
    from .bench_models import bench_models

    r = bench_models(threads=args.threads)
    print(table([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()}
                 for row in r["results"]]))
    start_of_work(PRETRAIN_THREADS)
    start = time.perf_counter()
    models = pretrain(args.scenario, cache_dir=args.cache_dir, threads=PRETRAIN_THREADS,
                      config=PretrainConfig())
    took = time.perf_counter() - start
    hit = " (cache hit: delete the cache dir to time training)" if models.cache_hit else ""
    print(f"pretraining ({args.scenario}, default config, {PRETRAIN_THREADS} threads): "
          f"{took:.1f} s{hit}")


def _bench_adapt(args) -> None:
    from .bench_adapt import bench_last
    from .bench_memory import bench_memory

    mem = bench_memory(n_stored=args.stored)
    print(table([{k: (f"{v:,.0f}" if isinstance(v, float) and v > 100 else v)
                  for k, v in mem.items() if not isinstance(v, dict | list)}]))
    rows = bench_last(threads=args.threads)
    print(table([{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in row.items()}
                 for row in rows]))


BENCHMARKS = {"env": _bench_env, "models": _bench_models, "adapt": _bench_adapt,
              "grid": _bench_grid}


def cmd_bench(args) -> int:
    if args.what not in BENCHMARKS:
        print(f"unknown benchmark {args.what!r}; choose one of: {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    if args.scenario is None:  # the env's speed targets (issue 11) are measured on gradual
        args.scenario = "gradual" if args.what == "env" else "abrupt-shift"
    start_of_work(args.threads)
    BENCHMARKS[args.what](args)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks (figures go in the README)",
        description="env: simulator requests/s. models: evaluator/generator latency and "
                    "pretraining time. adapt: error memory and LAST. grid: wall time of one "
                    "fixed grid (--cells seeds of one scenario and agent) run serially, then "
                    "on Ray with --workers CPUs; prints the speedup.")
    p.add_argument("what", choices=list(BENCHMARKS),
                   help="models: evaluator/generator latency + pretraining time; adapt: error "
                        "memory and LAST; env: simulator requests/s; "
                        "grid: serial vs Ray wall time")
    p.add_argument("--scenario", default=None,
                   help="scenario to time (default: gradual for env, abrupt-shift otherwise)")
    p.add_argument("--threads", type=positive_int, default=1, help="threads (default 1)")
    p.add_argument("--seconds", type=positive_float, default=1.0,
                   help="env: minimum seconds per figure")
    p.add_argument("--cells", type=positive_int, default=4, help="grid: cells (default 4)")
    p.add_argument("--requests", type=positive_int, default=51_200,
                   help="grid: requests per cell (default 51200)")
    p.add_argument("--batch", type=positive_int, default=256, help="grid: batch (default 256)")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="grid: CPUs of the local Ray (default 2)")
    p.add_argument("--agent", default="random", help="grid: agent (default random)")
    p.add_argument("--cache-dir", default=".driftrank_cache", help="models: checkpoint cache")
    p.add_argument("--stored", type=positive_int, default=1_000_000,
                   help="adapt: keys stored for the faiss comparison (default 1,000,000)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="grid: world setting, e.g. --world n_users=2000 (repeatable)")
    p.add_argument("--address", help="grid: use this Ray cluster instead of a local one")
    p.set_defaults(func=cmd_bench)
