"""How strongly should the error memory correct the evaluator? ReLoop2's ``lam``, chosen on
held-out data.

The memory's read-out blends each prediction with the label mean of similar past samples,
``(1 - lam) * y_base + lam * y_bar`` (ReLoop2 with ``gamma = 1``). A bucket's label mean is an
estimate from few samples: a strong blend moves predictions a long way on noisy evidence. That
still re-orders impressions for the better (AUC) but can cost calibration (log-loss), so the
paper's two metrics can disagree about the same ``lam``. The paper tunes ``lam`` per dataset
(0.9 on AmazonElectronics, 0.4 on MicroVideo).

This experiment asks the question without peeking: on the study's item-drift stream (static
greedy slates, the study's world and offline models), every ``lam`` in a grid is scored slot by
slot exactly as the study's evaluator probe scores the memory (predict a slot, then write it).
``lam`` is *selected* on the pre-shift slots of some seeds (best log-loss) and *tested* on the
post-shift slots of other seeds, paired with the base evaluator on the same impressions::

    python -m driftrank.experiments.memory_lambda --select-seeds 0 1 2 3 4 \\
        --test-seeds 5 6 7 8 9 10 11 12 13 14 --out docs/memory_lambda.md

One memory serves every ``lam`` (``lam`` only enters the read-out), so all of them see the same
writes, the same keys and the same impressions.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd

from .statistics import mean_ci, paired
from .study import PRETRAIN, STUDY
from .study_probe import static_slates
from .threads import start_of_work

__all__ = ["LAMS", "lambda_sweep", "select_and_test", "main"]

#: ``lam`` values scored; 0 is the base evaluator itself (the read-out returns ``y_base``).
LAMS = (0.0, 0.1, 0.25, 0.4, 0.5, 0.7, 0.9)


def lambda_sweep(scenario: str, seed: int, *, lams=LAMS, world: dict | None = None,
                 requests: int = 10_000, batch: int = 200, window: int = 1_000,
                 pretrain_config: dict | None = None, memory: dict | None = None,
                 cache_dir=".driftrank_cache") -> pd.DataFrame:
    """Per slot and ``lam``: log-loss and AUC of the compensated evaluator on the clicks of
    the static policy's slates; columns ``seed, slot, tick_start, tick_end, lam, logloss, auc,
    n``. ``memory`` overrides the agents' memory settings (``lam`` there is ignored)."""
    import torch

    from ..adapt.compensated import CompensatedEvaluator
    from ..agents.last import DEFAULT_MEMORY
    from ..agents.pretrained import PretrainConfig, pretrain
    from ..envs import VectorRerankEnv, make_config
    from ..evaluator.metrics import auc, log_loss
    from .runner import RUN_MAX_STEPS

    if window % batch:
        raise ValueError(f"window ({window}) must be a multiple of batch ({batch})")
    lams = [float(x) for x in lams]
    start_of_work(1)  # a unit of work like a cell
    env = VectorRerankEnv(batch, make_config(scenario, **{"max_steps": RUN_MAX_STEPS,
                                                          **(world or {})}))
    obs, _ = env.reset(seed=seed)
    models = pretrain(env.config, config=PretrainConfig().replace(**(pretrain_config or {})),
                      cache_dir=cache_dir, threads=1)
    evaluator = models.evaluator.eval()
    judge = CompensatedEvaluator(evaluator, **{**DEFAULT_MEMORY, **(memory or {}), "lam": 0.5})
    rows, acc = [], {lam: ([], []) for lam in lams}
    slot_start = 0
    for step in range(requests // batch):
        _, slates, (user, items, ids) = static_slates(models.generator, obs)
        with torch.inference_mode():
            base, hidden = evaluator.predict(user, items, ids)
        base = base.numpy().astype(np.float64).reshape(-1)
        keys = judge.keys(hidden, ids)
        obs, _, _, _, info = env.step(slates)
        clicks = np.asarray(info["clicks"], np.float64)
        keep = clicks.reshape(-1) >= 0
        for lam in lams:  # predict first ...
            judge.memory.lam = lam
            acc[lam][0].append(clicks.reshape(-1)[keep])
            acc[lam][1].append(judge.memory.compensate(keys, base)[keep])
        judge.observe(user, items, ids, clicks)  # ... then learn the slot's labels
        if (step + 1) % (window // batch) == 0:
            tick_end = int(info["request_id"][-1]) + 1
            for lam in lams:
                y, p = np.concatenate(acc[lam][0]), np.concatenate(acc[lam][1])
                rows.append({"seed": seed, "slot": step // (window // batch),
                             "tick_start": slot_start, "tick_end": tick_end, "lam": lam,
                             "logloss": log_loss(y, p), "auc": auc(y, p), "n": int(y.size)})
            acc = {lam: ([], []) for lam in lams}
            slot_start = tick_end
    return pd.DataFrame(rows)


def _per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """Impression-weighted log-loss and AUC per (lam, seed) over the rows given."""
    w = df.assign(ll_n=df["logloss"] * df["n"], auc_n=df["auc"] * df["n"])
    s = w.groupby(["lam", "seed"])[["ll_n", "auc_n", "n"]].sum()
    return pd.DataFrame({"logloss": s["ll_n"] / s["n"], "auc": s["auc_n"] / s["n"]})


def gains(df: pd.DataFrame) -> pd.DataFrame:
    """Per ``lam`` > 0: mean [95% t-interval] over seeds of the paired gain over the base
    evaluator (``lam == 0``) on the rows given: log-loss x1000 (base - lam, so positive is
    better) and AUC points (lam - base)."""
    per = _per_seed(df)
    base = per.loc[0.0]
    out = []
    for lam in sorted(set(per.index.get_level_values("lam")) - {0.0}):
        mine = per.loc[lam]
        ll = mean_ci(1000 * paired(base["logloss"], mine["logloss"]))
        au = mean_ci(100 * paired(mine["auc"], base["auc"]))
        out.append({"lam": lam, "n": ll[3], "logloss_gain": ll[0], "logloss_lo": ll[1],
                    "logloss_hi": ll[2], "auc_gain": au[0], "auc_lo": au[1], "auc_hi": au[2]})
    return pd.DataFrame(out)


def select_and_test(df: pd.DataFrame, select_seeds, test_seeds, shift: int) -> dict:
    """Pick ``lam`` by the best mean log-loss gain on the *pre-shift* slots of
    ``select_seeds`` (slots that end by ``shift``, except the first: the memory starts empty
    in it), then report every ``lam`` on the *post-shift* slots (starting at or after
    ``shift``) of ``test_seeds``. Returns ``{"chosen", "select", "test"}``."""
    select_seeds, test_seeds = set(select_seeds), set(test_seeds)
    if select_seeds & test_seeds:
        raise ValueError(f"select and test seeds overlap: {sorted(select_seeds & test_seeds)}")
    first = df["slot"] == df["slot"].min()
    pre = df[df["seed"].isin(select_seeds) & (df["tick_end"] <= shift) & ~first]
    post = df[df["seed"].isin(test_seeds) & (df["tick_start"] >= shift)]
    if pre.empty or post.empty:
        raise ValueError(f"no pre-shift slots of seeds {sorted(select_seeds)} or no post-shift "
                         f"slots of seeds {sorted(test_seeds)} around the shift at {shift}")
    select = gains(pre)
    chosen = float(select.loc[select["logloss_gain"].idxmax(), "lam"])
    return {"chosen": chosen, "select": select, "test": gains(post)}


def _table(g: pd.DataFrame, chosen: float) -> list[str]:
    lines = ["| lam | seeds | log-loss gain x1000 | AUC gain (points) |", "|---|---|---|---|"]
    for r in g.itertuples():
        mark = " (chosen)" if r.lam == chosen else ""
        lines.append(f"| {r.lam:g}{mark} | {r.n} | {r.logloss_gain:+.2f} [{r.logloss_lo:+.2f}, "
                     f"{r.logloss_hi:+.2f}] | {r.auc_gain:+.2f} [{r.auc_lo:+.2f}, "
                     f"{r.auc_hi:+.2f}] |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m driftrank.experiments.memory_lambda",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="quality-drift")
    p.add_argument("--select-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--test-seeds", type=int, nargs="+", default=list(range(5, 15)))
    p.add_argument("--cache-dir", default=".driftrank_cache")
    p.add_argument("--out", help="write the Markdown here (default: print it)")
    a = p.parse_args(argv)
    world = {**STUDY["world"], **copy.deepcopy(STUDY["scenario_world"].get(a.scenario, {}))}
    shift = min(int(t) for k, v in world.items() if k.endswith("_times") for t in v)
    df = pd.concat([lambda_sweep(a.scenario, s, world=world, requests=STUDY["requests"],
                                 batch=STUDY["batch"], window=STUDY["window"],
                                 pretrain_config=PRETRAIN, cache_dir=a.cache_dir)
                    for s in sorted(set(a.select_seeds) | set(a.test_seeds))])
    res = select_and_test(df, a.select_seeds, a.test_seeds, shift)
    text = "\n".join([
        f"# Error-memory strength (`lam`) on `{a.scenario}`", "",
        f"Generated by `python -m driftrank.experiments.memory_lambda`. The study's world "
        f"({world}), offline models and static greedy slates; {STUDY['requests']:,} requests "
        f"per seed, slots of {STUDY['window']:,}, the first event at tick {shift:,}. Gain = "
        f"paired over seeds against the base evaluator on the same impressions, mean [95% "
        f"t-interval]; positive is better for both metrics.", "",
        f"## Selection: pre-shift slots, seeds {a.select_seeds}", "",
        *_table(res["select"], res["chosen"]), "",
        f"## Test: post-shift slots, held-out seeds {a.test_seeds}", "",
        *_table(res["test"], res["chosen"]), ""])
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
