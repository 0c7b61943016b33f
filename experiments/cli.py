"""The ``driftrank`` command line.

    driftrank run                  one cell: a scenario, an agent, a seed -> per-window metrics
    driftrank grid [GRID.toml]     scenarios x agents x seeds, serially or on Ray; resumable
    driftrank report RUN_DIR       report.md + plots of a grid run
    driftrank agents [NAME]        list the agents you can run; NAME: its config keys
    driftrank scenarios            list the named drift scenarios
    driftrank pretrain             the offline phase on its own (cached checkpoints)
    driftrank bench WHAT           benchmarks: env, models, adapt, grid
    driftrank demo                 the main comparison on an embedded default
    driftrank study                each paper's claim re-run -> docs/study.md
    driftrank calibrate LOG        fit a world to an interaction log -> world.npz

Run ``driftrank COMMAND --help`` for the options of each command.

Each command lives in its own module, ``cli_<name>.py``, with a ``register(subparsers)`` that
adds its parser and sets ``func`` (``args -> exit code``). Adding a command is writing such a
module and naming it in :data:`COMMANDS`; errors a command raises as ``ValueError`` (or a
missing file) are printed as one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

EXAMPLES = """\
first steps:
  driftrank scenarios                                  what drifts in each scenario
  driftrank agents                                     which agents there are
  driftrank agents incremental                         one agent's config keys and defaults
  driftrank run --scenario abrupt-shift --agent random --requests 40960
  driftrank grid --scenarios stationary,abrupt-shift --agents random,oracle \\
                 --seeds 0-2 --out runs/first
  driftrank report runs/first                          -> runs/first/report.md
"""

#: command modules of this package, in the order ``driftrank --help`` lists them
COMMANDS = ("cli_run", "cli_grid", "cli_report", "cli_catalog", "cli_pretrain", "cli_bench",
            "cli_demo", "cli_study", "cli_calibrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftrank",
        description="Re-ranking simulator for serving-time adaptation under drifting tastes.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __package__).register(sub)
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
    except RuntimeError as exc:  # a checkpoint that cannot be loaded says what to do; others raise
        if not _is_checkpoint_error(exc):
            raise
        print(f"driftrank: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("driftrank: interrupted; finished cells are saved, re-run the same command to "
              "resume", file=sys.stderr)
        return 130


def _is_checkpoint_error(exc: BaseException) -> bool:
    # the module is loaded whenever one was raised; importing it here would pull torch into
    # every `driftrank --help`
    module = sys.modules.get(f"{__package__.rpartition('.')[0]}.evaluator.checkpoint")
    return module is not None and isinstance(exc, module.CheckpointError)


if __name__ == "__main__":
    sys.exit(main())
