"""Cost and reward of the model-adaptation agents next to ``static`` and ``incremental``.

``python -m driftrank.experiments.bench_adaptation latency`` serves ``batches`` batches of the
default world to each agent with its default config and times ``act`` (per batch), ``observe``
and one ``on_period`` update over what was served (the default period is 2,000 requests, so 8
batches of 256 are one period). ``... reward --seeds 0 1`` runs cells on a scenario through
:func:`~driftrank.experiments.runner.run_cell` and prints the mean true expected reward per
request before and after the first drift event, and its share of the headroom between
``static`` and the greedy-on-truth reference (mean and per-seed range). Figures go in the
README.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..agents import AgentContext, make_agent
from ..envs import Feedback, VectorRerankEnv, make_config
from .cli_args import key_values
from .runner import RUN_MAX_STEPS, agent_label, parse_events, run_cell
from .threads import start_of_work

AGENTS = ("static", "incremental", "adapter", "film", "maml")


def bench_latency(agents=AGENTS, scenario: str = "stationary", batch: int = 256,
                  batches: int = 24, period_batches: int = 8,
                  cache_dir: str | Path = ".driftrank_cache", threads: int = 1,
                  warmup: int = 8) -> pd.DataFrame:
    """One row per agent: act p50 ms per batch, us per request, observe ms, update s (mean
    over the ``on_period`` calls made every ``period_batches`` batches, as the runner would
    with the default period of 2,000 requests)."""
    start_of_work(threads)
    world = make_config(scenario, max_steps=RUN_MAX_STEPS)
    rows = []
    for name in agents:
        env = VectorRerankEnv(batch, world)
        agent = make_agent(name, AgentContext(world=env.config, seed=0,
                                              cache_dir=Path(cache_dir), threads=threads))
        obs, _ = env.reset(seed=0)
        for _ in range(warmup):  # not timed: the first batches of a process run slower
            obs = env.step(agent.act(obs))[0]
        act_s, observe_s, update_s = [], [], []
        periodic = isinstance(getattr(agent, "period", None), int)
        for i in range(batches):
            t0 = time.perf_counter()
            slates = agent.act(obs)
            act_s.append(time.perf_counter() - t0)
            next_obs, reward, _, _, info = env.step(slates)
            t0 = time.perf_counter()
            agent.observe(Feedback(info["request_id"], slates, info["clicks"],
                                   info["conversions"], reward, obs))
            observe_s.append(time.perf_counter() - t0)
            obs = next_obs
            if periodic and (i + 1) % period_batches == 0:
                t0 = time.perf_counter()
                agent.on_period(batch * (i + 1))
                update_s.append(time.perf_counter() - t0)
        act_ms = float(np.median(act_s)) * 1e3
        rows.append({"agent": name, "act_p50_ms": round(act_ms, 2),
                     "act_us_per_request": round(act_ms * 1e3 / batch, 1),
                     "observe_p50_ms": round(float(np.median(observe_s)) * 1e3, 2),
                     "update_s_per_period": round(float(np.mean(update_s)), 2) if update_s
                     else float("nan"),
                     "requests_per_update": batch * period_batches if update_s else 0})
    return pd.DataFrame(rows)


def bench_reward(agents=AGENTS, scenario: str = "abrupt-shift", seeds=(0, 1),
                 requests: int = 40_960, batch: int = 256, window: int = 2_048,
                 cache_dir: str | Path = ".driftrank_cache", threads: int = 1,
                 world: dict | None = None) -> pd.DataFrame:
    """Mean true expected reward per request of each agent (a name or a (name, config)
    pair), before / after the first drift event, and its share of the headroom over
    ``static`` (which must be among ``agents``)."""
    entries = [(entry, {}) if isinstance(entry, str) else entry for entry in agents]
    static = [agent_label(name, config) for name, config in entries if name == "static"]
    if not static:
        raise ValueError("bench_reward measures shares of the headroom over static: "
                         "list 'static' among the agents")
    frames = []
    for seed in seeds:
        for name, config in entries:
            spec = dict(scenario=scenario, agent=name, seed=int(seed), requests=requests,
                        batch=batch, window=window, agent_config=dict(config),
                        world=dict(world or {}))
            frames.append(run_cell(spec, cache_dir=cache_dir, threads=threads))
    df = pd.concat(frames, ignore_index=True)
    ticks = [t for text in df["drift_events"] for _, t in parse_events(text) if t > 0]
    first = min(ticks) if ticks else None
    df["phase"] = "all" if first is None else np.where(df["tick_start"] >= first, "after",
                                                       "before")
    out = (df.groupby(["label", "phase", "seed"])[["expected_reward", "reference_reward"]]
           .mean().reset_index())
    static = out[out["label"] == static[0]].set_index(["phase", "seed"])["expected_reward"]
    key = list(zip(out["phase"], out["seed"], strict=True))
    base = static.reindex(key).to_numpy()
    out["headroom_share"] = (out["expected_reward"] - base) / (out["reference_reward"] - base)
    return out.groupby(["label", "phase"]).agg(
        reward=("expected_reward", "mean"), reward_sd=("expected_reward", "std"),
        headroom_share=("headroom_share", "mean"), share_min=("headroom_share", "min"),
        share_max=("headroom_share", "max"), seeds=("seed", "count")).reset_index()


def agent_entry(text: str) -> str | tuple[str, dict]:
    """``NAME`` or ``NAME:KEY=VALUE[,KEY=VALUE...]`` (an agent with a config, e.g.
    ``maml:fast_adaptation=false``) -> a name, or a (name, config) pair."""
    name, sep, rest = text.partition(":")
    if not sep:
        return name
    if not name.strip() or not rest.strip():
        raise ValueError(f"--agents {text!r} must look like NAME or NAME:KEY=VALUE[,KEY=VALUE]")
    return name.strip(), key_values(rest.split(","), "--agents")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("latency", "reward"))
    p.add_argument("--agents", nargs="+", default=list(AGENTS),
                   help="names, or NAME:KEY=VALUE[,KEY=VALUE] for an agent with a config "
                        "(reward only)")
    p.add_argument("--scenario", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--requests", type=int, default=40_960)
    p.add_argument("--cache-dir", default=".driftrank_cache")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    pd.set_option("display.width", 160)
    if args.what == "latency":
        print(bench_latency(args.agents, args.scenario or "stationary",
                            cache_dir=args.cache_dir, threads=args.threads).to_string(index=False))
    else:
        agents = [agent_entry(a) for a in args.agents]
        print(bench_reward(agents, args.scenario or "abrupt-shift", args.seeds,
                           args.requests, cache_dir=args.cache_dir,
                           threads=args.threads).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
