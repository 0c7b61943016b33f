"""``driftrank run``: one cell, printed window by window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_args import cell_flags, key_values, nonneg_int, one_world, table


def cmd_run(args) -> int:
    from ..agents import checked_factory
    from .cell import CellSpec
    from .prepare import prepare_cell
    from .runner import run_cell

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out {args.out!r} must end in .parquet or .csv")
    spec = CellSpec(scenario=args.scenario, agent=args.agent, seed=args.seed,
                    requests=args.requests, batch=args.batch, window=args.window,
                    strict=not args.non_strict, world=one_world(args.world, "run"),
                    agent_config=key_values(args.config, "--config"))
    spec.world_config()  # bad scenario / world setting -> ValueError now
    checked_factory(spec.agent, spec.agent_config)  # bad agent / config -> ValueError now
    cache_dir = Path(args.cache_dir).absolute()
    prepare_cell(spec, cache_dir, args.threads,
                 log=None if args.no_progress else lambda m: print(m, file=sys.stderr,
                                                                     flush=True))
    df = run_cell(spec, cache_dir=cache_dir, threads=args.threads,
                  progress=not args.no_progress)
    rows = [{
        "window": int(r.window), "ticks": f"{r.tick_start}-{r.tick_end}",
        "reward/req": f"{r.reward_per_request:.3f}", "CTR": f"{r.ctr:.4f}",
        "regret/req": f"{r.regret_per_request:.3f}", "p50 ms": f"{r.act_p50_ms:.3f}",
        "p99 ms": f"{r.act_p99_ms:.3f}", "events": r.drift_events or "-",
    } for r in df.itertuples()]
    print(f"{spec.label} on {spec.scenario}, seed {spec.seed}: {spec.requests:,} requests "
          f"in batches of {spec.batch} (cell {spec.cell_id})")
    print(table(rows))
    w = df["requests"]
    print(f"total: reward/req {(df.reward_per_request * w).sum() / w.sum():.4f}, "
          f"CTR {(df.ctr * w).sum() / w.sum():.4f}, "
          f"regret/req {(df.regret_per_request * w).sum() / w.sum():.4f}")
    if not spec.strict:
        empty = (df.empty_slots_per_request * w).sum()
        print(f"empty slots (repeated candidates): {empty:,.0f}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            df.to_csv(out, index=False)
        else:
            df.to_parquet(out, index=False)
        print(f"wrote {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run one cell (scenario, agent, seed) and print per-window metrics",
        description="Serve --requests requests of SCENARIO to AGENT in batches and print "
                    "reward, CTR, regret vs the greedy-on-truth reference and act() latency "
                    "per metrics window.",
        epilog="example: driftrank run --scenario abrupt-shift --agent random "
               "--requests 40960 --world n_users=2000 --out random.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="stationary",
                   help="scenario name (see `driftrank scenarios`; default stationary)")
    p.add_argument("--agent", default="random",
                   help="agent name (see `driftrank agents`; default random)")
    p.add_argument("--config", action="append", metavar="KEY=VALUE",
                   help="agent config, e.g. --config period=4096 (repeatable; the keys: "
                        "`driftrank agents NAME`)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed (default 0)")
    cell_flags(p, grid=False)
    p.add_argument("--out", help="also save the per-window table (.parquet or .csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)
