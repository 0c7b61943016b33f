"""``driftrank calibrate LOG --format movielens|csv --out world.npz``: the command line of
:mod:`driftrank.experiments.calibrate` (``cli.py`` calls :func:`register`)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .cli_args import one_world

EPILOG = """\
examples:
  driftrank calibrate ml-100k/u.data --format movielens --out ml100k.npz
  driftrank calibrate clicks.csv --format csv --user-col uid --item-col iid \\
                      --click-col clicked --time-col ts --out world.npz --plot world.png
then:
  driftrank run --world calibration=ml100k.npz --agent random
  gymnasium.make("driftrank/Rerank-v0", calibration="ml100k.npz")

MovieLens: u.data (tab-separated user item rating timestamp) or ratings.csv; genres are read from
u.item or movies.csv beside it. CSV: named columns user, item, timestamp and optionally click
(0/1 per shown item: the log's CTR is then matched), rating, topic. The log is never shipped or
downloaded: point at your own file.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a world to an interaction log -> world.npz",
        description="Fit item vectors, user tastes, topics, quality, popularity, activity and "
                    "drift to an interaction log and write a world file that "
                    "`--world calibration=FILE` (or gymnasium.make(..., calibration=FILE)) "
                    "runs every scenario and agent on.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", metavar="LOG", help="the log file (u.data, ratings.csv or a CSV)")
    p.add_argument("--format", choices=["movielens", "csv"],
                   help="log format (default: movielens for u.data / ratings.csv, else csv)")
    p.add_argument("--out", default="world.npz", help="world file to write (default world.npz)")
    for key, default in (("user", "user"), ("item", "item"), ("time", "timestamp"),
                         ("click", "click"), ("rating", "rating"), ("topic", "topic")):
        p.add_argument(f"--{key}-col", default=default,
                       help=f"csv: column of the {key} (default {default})")
    p.add_argument("--genres", help="movielens: u.item or movies.csv (default: the one beside "
                                    "LOG, if any)")
    p.add_argument("--no-genres", action="store_true",
                   help="ignore genres: topics are k-means clusters of item vectors")
    p.add_argument("--latent-dim", type=int, default=16, help="latent dimension (default 16)")
    p.add_argument("--topics", type=int, default=20,
                   help="clusters when the log has no genres (default 20)")
    p.add_argument("--slices", type=int, default=8, help="time slices for drift (default 8)")
    p.add_argument("--jump-factor", type=float, default=3.0,
                   help="a slice change this many times the typical one may be an abrupt "
                        "event (default 3)")
    p.add_argument("--target-ctr", type=float,
                   help="CTR to tune an interaction log to (it has none of its own)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="world settings the CTR is tuned under, e.g. --world slate_size=5 "
                        "(use the ones you will run; repeatable)")
    p.add_argument("--tune-requests", type=int, default=8192,
                   help="simulated requests per CTR evaluation (default 8192)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--plot", help="also write a PNG of popularity and activity vs the log")
    p.set_defaults(func=run)


def run(args) -> int:
    from .calibrate import calibrate
    from .calibrate_log import LogColumns

    fmt = args.format or ("movielens" if Path(args.log).name in ("u.data", "ratings.csv")
                          else "csv")
    world = one_world(args.world, "calibrate")
    columns = LogColumns(user=args.user_col, item=args.item_col, time=args.time_col,
                         click=args.click_col, rating=args.rating_col, topic=args.topic_col)
    genres = False if args.no_genres else args.genres
    result = calibrate(args.log, format=fmt, out=args.out, columns=columns, genres=genres,
                       latent_dim=args.latent_dim, n_topics=args.topics, n_slices=args.slices,
                       jump_factor=args.jump_factor, target_ctr=args.target_ctr, world=world,
                       tune_requests=args.tune_requests, seed=args.seed)
    meta = result.metadata
    log = meta["log"]
    print(f"log: {log['rows']:,} rows ({log['kind']}), {log['requests']:,} requests"
          + (f", CTR {log['ctr']:.4f}" if log["ctr"] is not None else "")
          + (" (rows sorted by time)" if log["sorted_by_time"] else ""))
    sizes = result.sizes
    print(f"world: {sizes['n_items']:,} items, {sizes['n_users']:,} users, latent dim "
          f"{sizes['latent_dim']}, {sizes['n_topics']} topics ({meta['topics']['source']})")
    level = meta.get("level")
    if level:
        print(f"level: popularity-ranker CTR {level['simulated_ctr']:.4f} "
              f"(target {level['target_ctr']:.4f})")
    drift = meta["drift"]
    tau = drift["user_drift_timescale"]
    print(f"drift: gradual timescale {'none' if tau is None else f'{tau:,.0f} ticks'}; "
          f"abrupt events at {drift['abrupt_times'] or 'none'}"
          + (f" (share {drift['abrupt_user_share']:.2f})" if drift["abrupt_times"] else ""))
    print(f"wrote {result.path}")
    flags = [f"--world calibration={result.path}"]
    settings = {"user_drift_timescale": math.inf if tau is None else round(tau),
                "abrupt_times": drift["abrupt_times"],
                "abrupt_user_share": round(drift["abrupt_user_share"], 3)}
    drift_flags = [f"--world {k}={json.dumps(v)}" for k, v in settings.items()
                   if v not in (math.inf, [], 0.0)]
    print(f"run it:        driftrank run {' '.join(flags)}")
    if drift_flags:
        print(f"with its drift: driftrank run {' '.join(flags + drift_flags)}")
    if args.plot:
        from .calibrate_plot import compare_with_log, plot_comparison

        cmp = compare_with_log(result.path, world=world, seed=args.seed)
        path = plot_comparison(cmp, args.plot, title=Path(args.log).name)
        print(f"calibrated world vs log ({cmp['requests']:,} simulated requests): item clicks "
              f"Spearman {cmp['item_spearman']:.2f}, user requests Spearman "
              f"{cmp['user_spearman']:.2f}; wrote {path}")
    return 0
