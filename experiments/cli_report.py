"""``driftrank report``: report.md + plots of a grid run folder."""

from __future__ import annotations


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(args.run_dir, out_dir=args.out)
    print(f"wrote {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="write report.md + plots for a grid run folder",
        description="Summary table (mean and 95% interval over seeds), reward over time with "
                    "drift events, recovery after abrupt shifts and paired differences vs "
                    "`static`, written as RUN_DIR/report.md and PNG files.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder given to `driftrank grid --out`")
    p.add_argument("--out", help="write the report here instead of RUN_DIR")
    p.set_defaults(func=cmd_report)
