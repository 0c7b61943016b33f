"""``driftrank study``: the command's parser and handler (hooked into :mod:`.cli`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .study import STUDY_VERSION

DEFAULT_OUT = f"runs/study-v{STUDY_VERSION}"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "study", help="re-run each paper's claim (paired seeds, 95%% intervals) -> docs/study.md",
        description="Run the study's fixed, versioned grid (scenarios x agents x paired seeds, "
                    "in blocks) and its probes, then write docs/study.md: each paper's claim "
                    "as a row with the measured paired difference and a verdict, headroom, "
                    "per-event curves and latency. Finished cells are kept: re-running resumes.",
        epilog="examples:\n"
               "  driftrank study                       # the default study, serial\n"
               "  driftrank study --launcher ray        # local Ray, all cores\n"
               "  driftrank study --address auto        # a running Ray cluster\n"
               "  driftrank study --quick --out runs/study-quick --doc /tmp/study.md\n"
               "  driftrank study --report-only         # rewrite docs/study.md from results",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None,
                   help=f"study folder (default {DEFAULT_OUT}, or {DEFAULT_OUT}-quick)")
    p.add_argument("--doc", default=None,
                   help="document to write (default docs/study.md; with --quick, "
                        "OUT/study.md)")
    p.add_argument("--launcher", choices=["serial", "ray"],
                   help="serial (default) or ray (default when --address is given)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto or ray://host:10001)")
    p.add_argument("--workers", type=int, help="CPUs of a local Ray (default: all cores)")
    p.add_argument("--seeds", help="override the study's seeds, e.g. 0-9")
    p.add_argument("--quick", action="store_true",
                   help="a tiny version (small world, short cells) for smoke runs and tests")
    p.add_argument("--cache-dir", default=".driftrank_cache", help="pretrained checkpoints")
    p.add_argument("--report-only", action="store_true",
                   help="do not run anything; write the document from the stored results")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .config_file import parse_seeds
    from .study import run_study
    from .study_report import write_study

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out or (DEFAULT_OUT + ("-quick" if args.quick else "")))
    doc = Path(args.doc) if args.doc else (out / "study.md" if args.quick
                                            else Path("docs/study.md"))
    failed = 0
    if not args.report_only:
        launcher = args.launcher or ("ray" if args.address else "serial")
        seeds = parse_seeds(args.seeds) if args.seeds is not None else None
        state = run_study(out, launcher=launcher, address=args.address, seeds=seeds,
                          quick=args.quick, progress=not args.no_progress,
                          cache_dir=args.cache_dir, workers=args.workers)
        failed = state["runs"][-1]["failed_cells"]
    path = write_study(out, doc)
    print(f"wrote {path}")
    return 1 if failed else 0
