"""The ``driftrank`` command line.

    driftrank scenarios            list the named drift scenarios
    driftrank bench env            simulator throughput (requests/s, one thread)
    driftrank demo                 the main comparison on an embedded default

Run ``driftrank COMMAND --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import os
import sys


def _set_threads(n: int) -> None:
    """One thread by default: benchmarks and grid cells must not fight over cores."""
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency, but envs work without it
        pass


def _table(rows: list[dict], floatfmt: str = "{:,.0f}") -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[floatfmt.format(r[c]) if isinstance(r[c], float) else str(r[c]) for c in cols]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + " |"
            for row in cells]
    return "\n".join([line, sep, *body])


def cmd_scenarios(args) -> int:
    from driftrank.envs import DESCRIPTIONS

    for name, text in DESCRIPTIONS.items():
        print(f"{name:<14} {text}")
    return 0


def cmd_bench(args) -> int:
    _set_threads(args.threads)
    if args.what == "env":
        from driftrank.experiments.bench_env import bench_env

        rows = bench_env(scenario=args.scenario, min_seconds=args.seconds)
        print(_table(rows))
        return 0
    print(f"unknown benchmark {args.what!r}; choose one of: env", file=sys.stderr)
    return 2


def cmd_demo(args) -> int:
    from driftrank.experiments.demo import run_demo

    _set_threads(1)
    return run_demo(steps=args.steps, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftrank",
        description="Re-ranking simulator for serving-time adaptation under drifting tastes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("scenarios", help="list the named drift scenarios")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("bench", help="benchmarks (figures go in the README)")
    p.add_argument("what", choices=["env"], help="env: simulator requests/s")
    p.add_argument("--scenario", default="abrupt-shift", help="scenario to time")
    p.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    p.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per figure")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the main comparison on an embedded default")
    p.add_argument("--steps", type=int, default=200, help="steps of 256 requests")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"driftrank: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
