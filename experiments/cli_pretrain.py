"""``driftrank pretrain``: the offline phase on its own (logs -> evaluator -> generator)."""

from __future__ import annotations

import argparse

from .cli_args import key_values, nonneg_int, one_world, positive_int


def cmd_pretrain(args) -> int:
    from ..agents.pretrained import PretrainConfig, pretrain
    from ..envs import make_config
    from .threads import start_of_work
    from .truth_metrics import truth_metrics

    world = make_config(args.scenario, **one_world(args.world, "pretrain"))
    config = PretrainConfig().replace(**key_values(args.set, "--set"))
    start_of_work(args.threads)
    models = pretrain(world, seed=args.seed, config=config, cache_dir=args.cache_dir,
                      threads=args.threads, log=lambda m: print(f"  {m}", flush=True),
                      measure=truth_metrics)
    print(f"{'loaded from cache' if models.cache_hit else 'trained'}: {models.path}")
    metrics = dict(models.metrics)
    if "generator_true_reward" not in metrics:  # cached by an agent's prepare: measure now
        metrics.update(truth_metrics(world, args.seed, models.evaluator, models.generator,
                                     config))
    for key, value in metrics.items():
        print(f"  {key:<24} {value:.4f}" if isinstance(value, float) else f"  {key:<24} {value}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="offline phase: logs -> evaluator -> generator (cached)",
        description="Generate logs from the pre-drift world with the behaviour policy, train "
                    "the evaluator, then the generator (imitation + policy gradient), print "
                    "held-out metrics and cache the checkpoints. A second call loads them.",
        epilog="example:\n  driftrank pretrain --scenario abrupt-shift --set n_requests=10000"
               " --set evaluator_ids=false",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="stationary", help="scenario (default stationary)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="training seed (default 0)")
    p.add_argument("--world", action="append", metavar="KEY=VALUE",
                   help="world setting, repeatable (e.g. n_users=2000)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="pretraining setting, repeatable (n_requests, evaluator_epochs, "
                        "imitation_epochs, pg_steps, hidden, evaluator_ids=false, ...); values "
                        "are read like --world values (JSON: numbers, true/false, lists)")
    p.add_argument("--cache-dir", default=".driftrank_cache", help="checkpoint cache folder")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=cmd_pretrain)
