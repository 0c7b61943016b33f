"""The ``driftrank`` command line.

    driftrank run                  one cell: a scenario, an agent, a seed -> per-window metrics
    driftrank grid [GRID.toml]     scenarios x agents x seeds, serially or on Ray; resumable
    driftrank report RUN_DIR       report.md + plots of a grid run
    driftrank agents               list the agents you can run
    driftrank scenarios            list the named drift scenarios
    driftrank bench env            simulator throughput (requests/s, one thread)
    driftrank bench grid           wall time of a fixed grid, serial vs Ray
    driftrank demo                 the main comparison on an embedded default
    driftrank calibrate LOG        fit a world to an interaction log -> world.npz

Run ``driftrank COMMAND --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXAMPLES = """\
first steps:
  driftrank scenarios                                  what drifts in each scenario
  driftrank agents                                     which agents there are
  driftrank run --scenario abrupt-shift --agent random --requests 40960
  driftrank grid --scenarios stationary,abrupt-shift --agents random,oracle \\
                 --seeds 0-2 --out runs/first
  driftrank report runs/first                          -> runs/first/report.md
"""


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


# ------------------------------------------------------------------------------ value parsing
def _value(text: str):
    """A command-line value: JSON if it parses (numbers, lists, true/false), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_values(items: list[str] | None, flag: str) -> dict:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r} must look like KEY=VALUE, e.g. {flag} n_users=2000")
        out[key.strip()] = _value(raw.strip())
    return out


def _world_flags(items: list[str] | None) -> tuple[dict, dict]:
    """``--world KEY=VALUE`` (every scenario) and ``--world SCENARIO:KEY=VALUE``."""
    common: dict = {}
    per: dict = {}
    for item in items or []:
        head, sep, _ = item.partition("=")
        if ":" in head and sep:
            scenario, _, rest = item.partition(":")
            per.setdefault(scenario.strip(), {}).update(_key_values([rest], "--world"))
        else:
            common.update(_key_values([item], "--world"))
    return common, per


def _names(text: str, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--{what} {text!r} names no {what}; give a comma-separated list")
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


# ------------------------------------------------------------------------------ commands
def cmd_scenarios(args) -> int:
    from ..envs import DESCRIPTIONS

    for name, text in DESCRIPTIONS.items():
        print(f"{name:<14} {text}")
    return 0


def cmd_agents(args) -> int:
    from ..agents import available_agents

    agents = available_agents()
    width = max(len(n) for n in agents)
    for name, entry in agents.items():
        print(f"{name:<{width}}  {entry.description}")
    return 0


def cmd_run(args) -> int:
    from ..agents import available_agents
    from ..agents.registry import check_config
    from .grid import _load_factory
    from .runner import CellSpec, run_cell

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out {args.out!r} must end in .parquet or .csv")
    world, per = _world_flags(args.world)
    if per:
        raise ValueError(f"--world {next(iter(per))}:KEY=VALUE is for grids; `run` has one "
                         "scenario, use --world KEY=VALUE")
    spec = CellSpec(scenario=args.scenario, agent=args.agent, seed=args.seed,
                    requests=args.requests, batch=args.batch, window=args.window,
                    agent_config=_key_values(args.config, "--config"), world=world)
    spec.world_config()  # bad scenario / world setting -> ValueError now
    agents = available_agents()
    if spec.agent not in agents:
        raise ValueError(f"unknown agent {spec.agent!r}; available agents: {sorted(agents)} "
                         "(see `driftrank agents`)")
    factory = _load_factory(agents[spec.agent])
    check_config(spec.agent, factory, spec.agent_config)
    prepare = getattr(factory, "prepare", None)
    if callable(prepare):
        from ..agents import AgentContext
        from .grid import prepare_kwargs

        prepare(AgentContext(world=spec.world_config(), seed=spec.seed,
                             cache_dir=Path(args.cache_dir).absolute(), threads=args.threads),
                **prepare_kwargs(prepare, spec.agent_config))
    df = run_cell(spec, cache_dir=Path(args.cache_dir).absolute(), threads=args.threads,
                  progress=not args.no_progress)
    rows = [{
        "window": int(r.window), "ticks": f"{r.tick_start}-{r.tick_end}",
        "reward/req": f"{r.reward_per_request:.3f}", "CTR": f"{r.ctr:.4f}",
        "regret/req": f"{r.regret_per_request:.3f}", "p50 ms": f"{r.act_p50_ms:.3f}",
        "p99 ms": f"{r.act_p99_ms:.3f}", "events": r.drift_events or "-",
    } for r in df.itertuples()]
    print(f"{spec.label} on {spec.scenario}, seed {spec.seed}: {spec.requests:,} requests "
          f"in batches of {spec.batch} (cell {spec.cell_id})")
    print(_table(rows))
    w = df["requests"]
    print(f"total: reward/req {(df.reward_per_request * w).sum() / w.sum():.4f}, "
          f"CTR {(df.ctr * w).sum() / w.sum():.4f}, "
          f"regret/req {(df.regret_per_request * w).sum() / w.sum():.4f}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            df.to_csv(out, index=False)
        else:
            df.to_parquet(out, index=False)
        print(f"wrote {out}")
    return 0


def grid_settings(args) -> tuple[dict, dict]:
    """The grid (as ``GridSpec.from_dict`` input) and run settings from a file and flags."""
    from .config_file import load_grid_file, parse_seeds

    grid, run = load_grid_file(args.config) if args.config else ({}, {})
    if args.scenarios is not None:
        grid["scenarios"] = _names(args.scenarios, "scenarios")
    if args.agents is not None:
        grid["agents"] = _names(args.agents, "agents")
    if args.seeds is not None:
        grid["seeds"] = parse_seeds(args.seeds)
    for key in ("requests", "batch", "window"):
        if getattr(args, key) is not None:
            grid[key] = getattr(args, key)
    common, per = _world_flags(args.world)
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


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(args.run_dir, out_dir=args.out)
    print(f"wrote {path}")
    return 0


def cmd_bench(args) -> int:
    _set_threads(args.threads)
    if args.what == "env":
        from .bench_env import bench_env

        rows = bench_env(scenario=args.scenario, min_seconds=args.seconds)
        print(_table(rows))
        return 0
    if args.what == "grid":
        from .grid import bench_grid

        world, per = _world_flags(args.world)
        if per:
            raise ValueError("bench grid runs one scenario; use --world KEY=VALUE")
        r = bench_grid(cells=args.cells, requests=args.requests, batch=args.batch,
                       workers=args.workers, scenario=args.scenario, agent=args.agent,
                       world=world, address=args.address)
        print(f"grid: {r['cells']} cells x {r['requests_per_cell']:,} requests "
              f"(batch {r['batch']}), Ray CPUs {r['ray_cpus']:g}")
        print(_table([
            {"launcher": "serial", "wall_s": f"{r['serial_s']:.2f}", "speedup": "1.00"},
            {"launcher": "ray", "wall_s": f"{r['ray_s']:.2f}", "speedup": f"{r['speedup']:.2f}"},
            {"launcher": "ray incl. start", "wall_s": f"{r['ray_s'] + r['ray_start_s']:.2f}",
             "speedup": f"{r['speedup_with_start']:.2f}"},
        ]))
        print(f"speedup (Ray vs serial): {r['speedup']:.2f}x")
        return 0
    if args.what == "models":
        import time

        from ..agents.pretrained import PretrainConfig, pretrain
        from ..generator import bench_models

        r = bench_models(threads=args.threads)
        print(_table([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()}
                      for row in r["results"]]))
        start = time.perf_counter()
        models = pretrain(args.scenario, cache_dir=args.cache_dir, threads=2,
                          config=PretrainConfig())
        took = time.perf_counter() - start
        hit = " (cache hit: delete the cache dir to time training)" if models.cache_hit else ""
        print(f"pretraining ({args.scenario}, default config, 2 threads): {took:.1f} s{hit}")
        return 0
    if args.what == "adapt":
        from ..adapt.bench_last import bench_last
        from .bench_memory import bench_memory

        mem = bench_memory(n_stored=args.stored)
        print(_table([{k: (f"{v:,.0f}" if isinstance(v, float) and v > 100 else v)
                       for k, v in mem.items() if not isinstance(v, dict | list)}]))
        rows = bench_last(threads=args.threads)
        print(_table([{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in row.items()}
                      for row in rows]))
        return 0
    print(f"unknown benchmark {args.what!r}; choose one of: env, models, adapt, grid",
          file=sys.stderr)
    return 2


def cmd_pretrain(args) -> int:
    import json

    from ..agents.pretrained import PretrainConfig, pretrain
    from ..envs import make_config

    world = make_config(args.scenario, **_world_flags(args.world)[0])
    settings = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        if not _:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        settings[key] = json.loads(value) if value[:1].isdigit() or value[:1] == "-" else value
    config = PretrainConfig().replace(**settings)
    models = pretrain(world, seed=args.seed, config=config, cache_dir=args.cache_dir,
                      threads=args.threads, log=lambda m: print(f"  {m}", flush=True))
    print(f"{'loaded from cache' if models.cache_hit else 'trained'}: {models.path}")
    for key, value in models.metrics.items():
        print(f"  {key:<24} {value:.4f}" if isinstance(value, float) else f"  {key:<24} {value}")
    return 0


def cmd_demo(args) -> int:
    import inspect

    from .demo import run_demo

    _set_threads(1)
    wanted = {"out": args.out, "launcher": args.launcher, "progress": not args.no_progress,
              "cache_dir": args.cache_dir, "quick": args.quick}
    accepted = inspect.signature(run_demo).parameters
    return run_demo(**{k: v for k, v in wanted.items() if v is not None and k in accepted})


# ------------------------------------------------------------------------------ parser
def _cell_flags(p: argparse.ArgumentParser, grid: bool) -> None:
    d = None if grid else {"requests": 81_920, "batch": 256, "window": 2_048}
    p.add_argument("--requests", type=_positive_int, default=d and d["requests"],
                   help="requests per cell; a multiple of --batch (default 81920)")
    p.add_argument("--batch", type=_positive_int, default=d and d["batch"],
                   help="requests served per env step (default 256)")
    p.add_argument("--window", type=_positive_int, default=d and d["window"],
                   help="requests per metrics window; a multiple of --batch (default 2048)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="world setting on top of the scenario, e.g. --world n_users=2000 "
                        "--world abrupt_times=[20000]"
                        + ("; SCENARIO:KEY=VALUE sets it for one scenario" if grid else "")
                        + " (repeatable; see driftrank.envs.config.WorldConfig)")
    p.add_argument("--threads", type=_positive_int, default=None if grid else 1,
                   help="torch threads per cell (default 1)")
    p.add_argument("--cache-dir", default=None if grid else ".driftrank_cache",
                   help="where agents keep pretrained checkpoints (default .driftrank_cache)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftrank",
        description="Re-ranking simulator for serving-time adaptation under drifting tastes.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
                   help="agent config, e.g. --config period=4096 (repeatable)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="seed (default 0)")
    _cell_flags(p, grid=False)
    p.add_argument("--out", help="also save the per-window table (.parquet or .csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "grid", help="run scenarios x agents x seeds (serially or on Ray), resumable",
        description="Run every cell of a grid and store each finished cell under "
                    "RUN_DIR/cells/. Re-running the same command skips finished cells; a "
                    "failed cell is retried, then recorded in RUN_DIR/failed/. Give the grid "
                    "as flags or as a TOML file (flags win over the file).",
        epilog=("examples:\n"
                "  driftrank grid --scenarios stationary,abrupt-shift --agents random,oracle "
                "--seeds 0-2 --out runs/a\n"
                "  driftrank grid grid.toml --launcher ray            # local Ray, all cores\n"
                "  driftrank grid grid.toml --address auto            # a running Ray cluster\n"
                "\ngrid.toml (agent configs go here):\n"
                "  scenarios = [\"stationary\", \"abrupt-shift\"]\n"
                "  seeds = \"0-4\"\n  requests = 81920\n  batch = 256\n  window = 2048\n"
                "  [world]\n  n_users = 2000\n"
                "  [scenario_world.abrupt-shift]\n  abrupt_times = [20000, 60000]\n"
                "  [[agents]]\n  name = \"random\"\n"
                "  [[agents]]\n  name = \"incremental\"\n  config = { period = 4096 }\n"
                "  [run]\n  out = \"runs/main\"\n  launcher = \"ray\"\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="grid file (TOML; see the example below)")
    p.add_argument("--scenarios", help="comma-separated scenario names")
    p.add_argument("--agents", help="comma-separated agent names (configs: use a grid file)")
    p.add_argument("--seeds", help="seeds: 0,1,2 or 0-4 (default 0)")
    _cell_flags(p, grid=True)
    p.add_argument("--out", help="run folder (default runs/grid-<hash of the grid>)")
    p.add_argument("--launcher", choices=["serial", "ray"],
                   help="serial: one cell after another in this process; ray: one Ray task "
                        "per cell (default serial, or ray if --address is given)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto or ray://host:10001)")
    p.add_argument("--workers", type=_positive_int,
                   help="CPUs of the local Ray started for this run (default: all cores)")
    p.add_argument("--cpus-per-cell", type=_positive_float,
                   help="Ray CPUs reserved per cell, fractions allowed (default 1)")
    p.add_argument("--runtime-env", metavar="JSON",
                   help="Ray runtime_env for the workers, e.g. '{\"pip\": [\"my-agents\"]}'")
    p.add_argument("--retries", type=_nonneg_int,
                   help="extra attempts of a failed cell (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true", help="write the report when done")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser(
        "report", help="write report.md + plots for a grid run folder",
        description="Summary table (mean and 95%% interval over seeds), reward over time with "
                    "drift events, recovery after abrupt shifts and paired differences vs "
                    "`static`, written as RUN_DIR/report.md and PNG files.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder given to `driftrank grid --out`")
    p.add_argument("--out", help="write the report here instead of RUN_DIR")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "pretrain", help="offline phase: logs -> evaluator -> generator (cached)",
        description="Generate logs from the pre-drift world with the behaviour policy, train "
                    "the evaluator, then the generator (imitation + policy gradient), print "
                    "held-out metrics and cache the checkpoints. A second call loads them.",
        epilog="example:\n  driftrank pretrain --scenario abrupt-shift --set n_requests=10000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="stationary", help="scenario (default stationary)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="training seed (default 0)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="world setting, repeatable (e.g. n_users=2000)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="pretraining setting, repeatable (n_requests, evaluator_epochs, "
                        "imitation_epochs, pg_steps, hidden, ...)")
    p.add_argument("--cache-dir", default=".driftrank_cache", help="checkpoint cache folder")
    p.add_argument("--threads", type=_positive_int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("agents", help="list the agents (built-in and plugins)")
    p.set_defaults(func=cmd_agents)

    p = sub.add_parser("scenarios", help="list the named drift scenarios")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser(
        "bench", help="benchmarks (figures go in the README)",
        description="env: simulator requests/s. grid: wall time of one fixed grid (--cells "
                    "seeds of one scenario and agent) run serially, then on Ray with "
                    "--workers CPUs; prints the speedup.")
    p.add_argument("what", choices=["env", "models", "adapt", "grid"],
                   help="models: evaluator/generator latency + pretraining time; adapt: error "
                        "memory and LAST; env: simulator requests/s; "
                   "grid: serial vs Ray wall time")
    p.add_argument("--scenario", default="abrupt-shift", help="scenario to time")
    p.add_argument("--threads", type=_positive_int, default=1, help="threads (default 1)")
    p.add_argument("--seconds", type=_positive_float, default=1.0,
                   help="env: minimum seconds per figure")
    p.add_argument("--cells", type=_positive_int, default=4, help="grid: cells (default 4)")
    p.add_argument("--requests", type=_positive_int, default=51_200,
                   help="grid: requests per cell (default 51200)")
    p.add_argument("--batch", type=_positive_int, default=256, help="grid: batch (default 256)")
    p.add_argument("--workers", type=_positive_int, default=2,
                   help="grid: CPUs of the local Ray (default 2)")
    p.add_argument("--agent", default="random", help="grid: agent (default random)")
    p.add_argument("--cache-dir", default=".driftrank_cache", help="models: checkpoint cache")
    p.add_argument("--stored", type=_positive_int, default=1_000_000,
                   help="adapt: keys stored for the faiss comparison (default 1,000,000)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="grid: world setting, e.g. --world n_users=2000 (repeatable)")
    p.add_argument("--address", help="grid: use this Ray cluster instead of a local one")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "demo", help="the main comparison on an embedded default grid",
        description="Every built-in agent on an embedded default grid, then the report's "
                    "summary. Finished cells are kept: re-running resumes.")
    p.add_argument("--out", help="run folder (default runs/demo)")
    p.add_argument("--launcher", choices=["serial", "ray"], help="default ray")
    p.add_argument("--cache-dir", help="pretrained checkpoints (default .driftrank_cache)")
    p.add_argument("--quick", action="store_true", help="a smoke-sized demo (tiny world)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    from .calibrate_cli import add_parser as add_calibrate_parser  # driftrank calibrate

    add_calibrate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, message printed)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        print(f"driftrank: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("driftrank: interrupted; finished cells are saved, re-run the same command to "
              "resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
