"""``driftrank grid``: scenarios x agents x seeds from flags and/or a grid file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_args import cell_flags, names, nonneg_int, positive_float, positive_int, world_flags

EPILOG = """\
examples:
  driftrank grid --scenarios stationary,abrupt-shift --agents random,oracle --seeds 0-2 --out runs/a
  driftrank grid grid.toml --launcher ray            # local Ray, all cores
  driftrank grid grid.toml --address auto            # a running Ray cluster

grid.toml (agent configs go here; keys: `driftrank agents NAME`):
  scenarios = ["stationary", "abrupt-shift"]
  seeds = "0-4"
  requests = 81920
  batch = 256
  window = 2048
  [world]
  n_users = 2000
  [scenario_world.abrupt-shift]
  abrupt_times = [20000, 60000]
  [[agents]]
  name = "random"
  [[agents]]
  name = "incremental"
  config = { period = 4096 }
  [run]
  out = "runs/main"
  launcher = "ray"
"""


def grid_settings(args) -> tuple[dict, dict]:
    """The grid (as ``GridSpec.from_dict`` input) and run settings from a file and flags."""
    from .config_file import load_grid_file, parse_seeds

    grid, run = load_grid_file(args.config) if args.config else ({}, {})
    if args.scenarios is not None:
        grid["scenarios"] = names(args.scenarios, "scenarios")
    if args.agents is not None:
        grid["agents"] = names(args.agents, "agents")
    if args.seeds is not None:
        grid["seeds"] = parse_seeds(args.seeds)
    for key in ("requests", "batch", "window"):
        if getattr(args, key) is not None:
            grid[key] = getattr(args, key)
    if args.non_strict:
        grid["strict"] = False
    common, per = world_flags(args.world)
    if common:
        grid["world"] = {**grid.get("world", {}), **common}
    for scenario, values in per.items():
        sw = grid.setdefault("scenario_world", {})
        sw[scenario] = {**sw.get(scenario, {}), **values}
    missing = [k for k in ("scenarios", "agents") if k not in grid]
    if missing:
        raise ValueError(f"the grid needs {' and '.join(missing)}: pass "
                         + " and ".join(f"--{k}" for k in missing)
                         + " or a grid file (see `driftrank grid --help`)")
    flags = {"out": args.out, "launcher": args.launcher, "address": args.address,
             "retries": args.retries, "cpus_per_cell": args.cpus_per_cell,
             "threads": args.threads, "workers": args.workers, "cache_dir": args.cache_dir,
             "runtime_env": args.runtime_env}
    for key, value in flags.items():
        if value is not None:
            run[key] = value
    if args.no_progress:
        run["progress"] = False
    if isinstance(run.get("runtime_env"), str):
        try:
            run["runtime_env"] = json.loads(run["runtime_env"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"--runtime-env must be a JSON object, e.g. "
                             f"'{{\"pip\": [\"mypkg\"]}}': {exc}") from exc
    return grid, run


def cmd_grid(args) -> int:
    from .grid import GridError, GridSpec, run_grid

    grid, run = grid_settings(args)
    spec = GridSpec.from_dict(grid)
    launcher = run.get("launcher") or ("ray" if run.get("address") else "serial")
    out = Path(run.get("out") or f"runs/grid-{spec.grid_id}")
    n = len(spec.cells())
    print(f"grid: {len(spec.scenarios)} scenario(s) x {len(spec.agents)} agent(s) x "
          f"{len(spec.seeds)} seed(s) = {n} cells -> {out} ({launcher})", file=sys.stderr)
    try:
        summary = run_grid(
            spec, out, launcher=launcher, address=run.get("address"),
            retries=run.get("retries", 1), progress=run.get("progress", True),
            num_cpus_per_cell=run.get("cpus_per_cell", 1.0), threads=run.get("threads", 1),
            cache_dir=run.get("cache_dir", ".driftrank_cache"),
            runtime_env=run.get("runtime_env"), num_cpus=run.get("workers"))
    except GridError as exc:
        print(f"driftrank: {exc}", file=sys.stderr)
        return 1
    print(summary)
    if args.report:
        from .report import write_report

        print(f"wrote {write_report(out)}")
    else:
        print(f"next: driftrank report {out}")
    return 0 if summary.ok else 1


def register(sub) -> None:
    p = sub.add_parser(
        "grid", help="run scenarios x agents x seeds (serially or on Ray), resumable",
        description="Run every cell of a grid and store each finished cell under "
                    "RUN_DIR/cells/. Re-running the same command skips finished cells; a "
                    "failed cell is retried, then recorded in RUN_DIR/failed/. Give the grid "
                    "as flags or as a TOML file (flags win over the file).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="grid file (TOML; see the example below)")
    p.add_argument("--scenarios", help="comma-separated scenario names")
    p.add_argument("--agents", help="comma-separated agent names (configs: use a grid file)")
    p.add_argument("--seeds", help="seeds: 0,1,2 or 0-4 (default 0)")
    cell_flags(p, grid=True)
    p.add_argument("--out", help="run folder (default runs/grid-<hash of the grid>)")
    p.add_argument("--launcher", choices=["serial", "ray"],
                   help="serial: one cell after another in this process; ray: one Ray task "
                        "per cell (default serial, or ray if --address is given)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto or ray://host:10001)")
    p.add_argument("--workers", type=positive_int,
                   help="CPUs of the local Ray started for this run (default: all cores)")
    p.add_argument("--cpus-per-cell", type=positive_float,
                   help="Ray CPUs reserved per cell, fractions allowed (default 1)")
    p.add_argument("--runtime-env", metavar="JSON",
                   help="Ray runtime_env for the workers, e.g. '{\"pip\": [\"my-agents\"]}'")
    p.add_argument("--retries", type=nonneg_int,
                   help="extra attempts of a failed cell (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true", help="write the report when done")
    p.set_defaults(func=cmd_grid)
