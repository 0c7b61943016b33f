"""``driftrank demo``: the main comparison on an embedded default grid."""

from __future__ import annotations

import inspect


def cmd_demo(args) -> int:
    from . import demo
    from .threads import start_of_work

    start_of_work(1)
    wanted = {"out": args.out, "launcher": args.launcher, "progress": not args.no_progress,
              "cache_dir": args.cache_dir, "quick": args.quick}
    accepted = inspect.signature(demo.run_demo).parameters
    return demo.run_demo(**{k: v for k, v in wanted.items() if v is not None and k in accepted})


def register(sub) -> None:
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
