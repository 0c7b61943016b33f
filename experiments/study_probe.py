"""Probes of the study: numbers the runner's per-window reward cannot give.

Both probes serve one stream with the pretrained generator's greedy slates (the ``static``
policy), so every judge and every agent is measured on *identical* requests and labels, paired
within the seed as well as across seeds.

- :func:`evaluator_probe` (ReLoop2's slot-by-slot experiment): per metrics window ("slot"), the
  log-loss and AUC of four click predictors on the served impressions, each predicting before
  the slot's labels are written (prequential):

  ``base``               the pretrained evaluator, frozen;
  ``memory``             the same, corrected by an error memory written from the stream
                         (:class:`~driftrank.adapt.compensated.CompensatedEvaluator`);
  ``incremental``        a copy fine-tuned for one pass on each period's fresh labels;
  ``incremental+memory`` that copy with its own memory, reset at each retraining and refilled
                         with the period's labels keyed by the new model.

- :func:`search_probe` (LAST's offline check): on each request, the slates every listed agent
  would serve, judged by the stale pretrained evaluator and by the world's truth.

Each probe returns a tidy DataFrame; :func:`run_probes` stores one parquet file per
(probe, scenario, seed) under ``OUT/probes/`` and skips files that exist (resumable). The study's
claims read only these files, so another implementation (the ``adapt`` package's own) can
replace a probe as long as it writes the same columns (:data:`EVALUATOR_COLUMNS`,
:data:`SEARCH_COLUMNS`).
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..adapt.ray_session import start_ray
from .runner import RUN_MAX_STEPS, canonical_json
from .threads import start_of_work

JUDGES = ("base", "memory", "incremental", "incremental+memory")
EVALUATOR_COLUMNS = ("scenario", "variant", "seed", "slot", "tick_start", "tick_end",
                     "drift_events", "judge", "logloss", "auc", "n")
SEARCH_COLUMNS = ("scenario", "variant", "seed", "slot", "tick_start", "tick_end", "drift_events",
                  "agent", "evaluator_score", "expected_reward", "n")


def _env(scenario: str, seed: int, world: dict, batch: int):
    from ..envs import VectorRerankEnv, make_config

    config = make_config(scenario, **{"max_steps": RUN_MAX_STEPS, **world})
    env = VectorRerankEnv(batch, config)
    obs, info = env.reset(seed=seed)
    return env, obs, list(info.get("drift_events", []))


def _events_in(events: list[dict], lo: int, hi: int) -> str:
    return ";".join(f"{e['kind']}@{int(e['tick'])}" for e in events if lo <= int(e["tick"]) < hi)


def static_slates(generator, obs):
    """The static policy on one batch: ``(inputs, slates, (user, served items, served ids))``,
    the model inputs of ``obs``, the generator's greedy slates (int64) and what a judge reads
    of them."""
    import torch

    from ..agents.pretrained import model_inputs

    x = model_inputs(obs)
    with torch.inference_mode():
        slates = generator.greedy(x["user"], x["candidates"],
                                  x["candidate_ids"]).numpy().astype(np.int64)
    r = np.arange(slates.shape[0])[:, None]
    return x, slates, (x["user"], x["candidates"][r, slates], x["candidate_ids"][r, slates])


def evaluator_probe(scenario: str, seed: int, *, world: dict | None = None,
                    requests: int = 12_000, batch: int = 200, window: int = 1_000,
                    period: int = 2_000, pretrain_config: dict | None = None,
                    memory: dict | None = None, cache_dir=".driftrank_cache",
                    variant: str = "history") -> pd.DataFrame:
    """Per-slot log-loss and AUC of the four judges (:data:`JUDGES`); see the module doc."""

    from .. import evaluator as ev
    from ..adapt.compensated import CompensatedEvaluator
    from ..agents.pretrained import PretrainConfig, pretrain

    start_of_work(1)  # a probe is a unit of work like a cell
    world = dict(world or {})
    env, obs, events = _env(scenario, seed, world, batch)
    models = pretrain(env.config, config=PretrainConfig().replace(**(pretrain_config or {})),
                      cache_dir=cache_dir, threads=1)
    memory_config = _memory_defaults() | dict(memory or {})
    base = models.evaluator.eval()
    inc = copy.deepcopy(base).eval()
    judges = {"memory": CompensatedEvaluator(base, **memory_config),
              "incremental+memory": CompensatedEvaluator(inc, **memory_config)}
    rng = np.random.default_rng([seed, 7207])
    steps_per_slot = max(1, window // batch)
    rows, buffer = [], []
    acc = {j: ([], []) for j in JUDGES}
    slot_start = int(env.world.tick)
    done = 0
    for step in range(requests // batch):
        x, slates, (user, items, ids) = static_slates(models.generator, obs)
        comp_base, p_base = judges["memory"].predict(user, items, ids)
        comp_inc, p_inc = judges["incremental+memory"].predict(user, items, ids)
        preds = {"base": p_base, "memory": comp_base, "incremental": p_inc,
                 "incremental+memory": comp_inc}
        obs, _, _, _, info = env.step(slates)
        clicks = np.asarray(info["clicks"], np.float64)
        for j in JUDGES:
            acc[j][0].append(clicks.reshape(-1))
            acc[j][1].append(np.asarray(preds[j], np.float64).reshape(-1))
        judges["memory"].observe(user, items, ids, clicks)
        judges["incremental+memory"].observe(user, items, ids, clicks)
        buffer.append({**x, "slates": slates, "clicks": clicks.astype(np.float32)})
        events.extend(info.get("drift_events", []))
        before, done = done, done + batch
        if done // period > before // period:  # retrain the incremental judge, re-key its memory
            data = {k: np.concatenate([b[k] for b in buffer]) for k in buffer[0]}
            inc.train()
            ev.train_evaluator(inc, data, epochs=1, lr=1e-3, seed=int(rng.integers(2**31)))
            inc.eval()
            comp = judges["incremental+memory"]
            comp.reset()
            rr = np.arange(data["slates"].shape[0])[:, None]
            comp.observe(data["user"], data["candidates"][rr, data["slates"]],
                         data["candidate_ids"][rr, data["slates"]], data["clicks"])
            buffer.clear()
        if (step + 1) % steps_per_slot == 0:
            tick_end = int(info["request_id"][-1]) + 1
            for j in JUDGES:
                y, p = np.concatenate(acc[j][0]), np.concatenate(acc[j][1])
                rows.append({"scenario": scenario, "variant": variant, "seed": seed,
                             "slot": len(rows) // len(JUDGES), "tick_start": slot_start,
                             "tick_end": tick_end,
                             "drift_events": _events_in(events, slot_start, tick_end),
                             "judge": j, "logloss": ev.log_loss(y, p), "auc": ev.auc(y, p),
                             "n": int(y.size)})
                acc[j] = ([], [])
            slot_start = tick_end
    return pd.DataFrame(rows, columns=list(EVALUATOR_COLUMNS))


def _memory_defaults() -> dict:
    """The error-memory settings the ``reloop2`` agent uses, so the probe judges the same thing."""
    try:
        from ..agents.last import DEFAULT_MEMORY
    except ImportError:  # renamed: the memory's own defaults
        return {}
    return dict(DEFAULT_MEMORY)


def search_probe(scenario: str, seed: int, agents: dict[str, tuple[str, dict]], *,
                 world: dict | None = None, requests: int = 4_000, batch: int = 200,
                 window: int = 1_000, pretrain_config: dict | None = None,
                 cache_dir=".driftrank_cache", variant: str = "history") -> pd.DataFrame:
    """Per window, each agent's slates on the same requests: mean stale-evaluator score and
    true expected reward. The stream is served with ``static``'s greedy slates; every agent
    observes that feedback (what a shadow deployment would see)."""
    import torch

    from ..agents import AgentContext, make_agent
    from ..agents.pretrained import PretrainConfig, pretrain
    from ..envs import Feedback

    start_of_work(1)  # a probe is a unit of work like a cell
    env, obs, events = _env(scenario, seed, dict(world or {}), batch)
    models = pretrain(env.config, config=PretrainConfig().replace(**(pretrain_config or {})),
                      cache_dir=cache_dir, threads=1)
    context = AgentContext(world=env.config, seed=seed, cache_dir=Path(cache_dir), threads=1)
    built = {}
    rows = []
    try:
        for key, (name, config) in agents.items():
            built[key] = make_agent(name, context, **config)
            if getattr(built[key], "needs_world", False):  # the oracle reads truth, as in a cell
                built[key].attach_world(env.world)
        acc = {k: [0.0, 0.0, 0] for k in built}
        slot_start, done = int(env.world.tick), 0
        steps_per_slot = max(1, window // batch)
        for step in range(requests // batch):
            x, served, _ = static_slates(models.generator, obs)  # the stream static serves
            r = np.arange(obs["candidates"].shape[0])[:, None]
            for key, agent in built.items():
                slates = np.asarray(agent.act(obs), np.int64)
                with torch.inference_mode():
                    score = models.evaluator.score(x["user"], x["candidates"][r, slates],
                                                   x["candidate_ids"][r, slates]).numpy()
                truth = env.world.expected_reward(slates)
                acc[key][0] += float(score.sum())
                acc[key][1] += float(truth.sum())
                acc[key][2] += slates.shape[0]
            obs_served = obs
            obs, reward, _, _, info = env.step(served)
            events.extend(info.get("drift_events", []))
            before, done = done, done + batch
            for agent in built.values():
                agent.observe(Feedback(request_id=info["request_id"], slates=served,
                                       clicks=info["clicks"], conversions=info["conversions"],
                                       reward=reward, obs=obs_served))
                period = getattr(agent, "period", None)
                if isinstance(period, int) and period > 0 and done // period > before // period:
                    agent.on_period(done)
            if (step + 1) % steps_per_slot == 0:
                tick_end = int(info["request_id"][-1]) + 1
                slot = len(rows) // len(built)
                for key, (score, truth, n) in acc.items():
                    rows.append({"scenario": scenario, "variant": variant, "seed": seed,
                                 "slot": slot, "tick_start": slot_start, "tick_end": tick_end,
                                 "drift_events": _events_in(events, slot_start, tick_end),
                                 "agent": key, "evaluator_score": score / n,
                                 "expected_reward": truth / n, "n": n})
                acc = {k: [0.0, 0.0, 0] for k in built}
                slot_start = tick_end
    finally:
        for agent in built.values():
            close = getattr(agent, "close", None)
            if callable(close):
                close()
    return pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))


# ---------------------------------------------------------------------------------- running
def _probe_jobs(config: dict) -> list[tuple[str, str, int, dict]]:
    """(probe, scenario, seed, kwargs) of every probe run the study config asks for."""
    from ..agents import available_agents
    from ..envs import scenario_names

    here = set(scenario_names())
    agents_here = set(available_agents())
    probes = config.get("probes", {})
    world = {**config.get("world", {}), **config.get("variants", {}).get("history", {})}
    base = dict(batch=config["batch"], window=config["window"])
    jobs = []
    ev = probes.get("evaluator")
    if ev:
        for s in ev["scenarios"]:
            if s not in here:
                continue
            w = {**world, **config.get("scenario_world", {}).get(s, {})}
            for seed in config["seeds"]:
                jobs.append(("evaluator", s, seed, dict(
                    base, world=w, requests=ev.get("requests", config["requests"]),
                    period=ev["period"], pretrain_config=ev.get("pretrain_config"),
                    memory=ev.get("memory"))))
    se = probes.get("search")
    if se:
        keys = [k for k in se["agents"] if config["agents"][k]["name"] in agents_here]
        agents = {k: (config["agents"][k]["name"], dict(config["agents"][k].get("config") or {}))
                  for k in keys}
        pre = se.get("pretrain_config") or next(
            (a[1].get("pretrain_config") for a in agents.values() if "pretrain_config" in a[1]),
            None)
        for s in se["scenarios"]:
            if s not in here or len(agents) < 2:
                continue
            w = {**world, **config.get("scenario_world", {}).get(s, {})}
            for seed in config["seeds"]:
                jobs.append(("search", s, seed, dict(
                    base, world=w, requests=se.get("requests", config["requests"]),
                    agents=agents, pretrain_config=pre)))
    return jobs


def probe_path(folder: Path, probe: str, scenario: str, seed: int, kwargs: dict) -> Path:
    digest = hashlib.sha256(canonical_json(kwargs).encode()).hexdigest()[:10]
    return Path(folder) / f"{probe}.{scenario}.s{seed}.{digest}.parquet"


def _run_one(probe: str, scenario: str, seed: int, kwargs: dict, cache_dir: str):
    kw = dict(kwargs)
    if probe == "search":
        return search_probe(scenario, seed, kw.pop("agents"), cache_dir=cache_dir, **kw)
    return evaluator_probe(scenario, seed, cache_dir=cache_dir, **kw)


def _timed(probe, scenario, seed, kwargs, cache_dir) -> pd.DataFrame:
    """One probe run (a Ray task body as well): its frame, with its compute seconds in
    ``df.attrs["probe_seconds"]`` (stored in the parquet file with the rows, so the seconds of
    a finished probe survive an interrupted study)."""
    import time

    t0 = time.perf_counter()
    df = _run_one(probe, scenario, seed, kwargs, cache_dir)
    df.attrs["probe_seconds"] = time.perf_counter() - t0
    return df


def probe_seconds(folder: str | Path, files: list[str]) -> dict[str, float]:
    """{file: compute seconds} of the stored probe ``files`` that carry them."""
    out = {}
    for name in files:
        path = Path(folder) / name
        if path.is_file():
            seconds = pd.read_parquet(path).attrs.get("probe_seconds")
            if seconds is not None:
                out[name] = float(seconds)
    return out


def _serial_outcomes(todo, cache_dir):
    """(job, path, frame or None, exception or None) of each probe, run in this process."""
    for job, path in todo:
        try:
            df = _timed(*job, cache_dir)
        except Exception as exc:  # noqa: BLE001 - recorded, the study goes on
            yield job, path, None, exc
        else:
            yield job, path, df, None


def _ray_outcomes(todo, cache_dir, address, workers):
    """The same as :func:`_serial_outcomes`, one Ray task per probe, in finishing order."""
    import ray

    started = start_ray(address, num_cpus=workers)
    try:
        task = ray.remote(_timed).options(num_cpus=1, max_retries=0)
        pending = {task.remote(*job, cache_dir): (job, path) for job, path in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                job, path = pending.pop(ref)
                try:
                    df = ray.get(ref, timeout=120)
                except Exception as exc:  # noqa: BLE001 - recorded, the study goes on
                    cause = getattr(exc, "cause", None)  # a RayTaskError carries the original
                    yield job, path, None, cause if isinstance(cause, BaseException) else exc
                else:
                    yield job, path, df, None
    finally:
        if started:
            ray.shutdown()


def run_probes(config: dict, folder: str | Path, cache_dir=".driftrank_cache",
               progress: bool = True, log=print, launcher: str = "serial",
               address: str | None = None, workers: int | None = None) -> dict:
    """Run every probe file that is not there yet (in this process, or one Ray task each with
    ``launcher="ray"``); returns ``{"files", "failed", "seconds"}`` (``seconds``: of every
    stored file, this invocation's and earlier ones'). A file is written as soon as its run
    finishes, so an interrupted study resumes here too and loses no finished probe."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    cache_dir = str(Path(cache_dir).absolute())
    jobs = [(j, probe_path(folder, *j)) for j in _probe_jobs(config)]
    files = [p.name for _, p in jobs]
    todo = [(j, p) for j, p in jobs if not p.exists()]
    failed = []
    if jobs:
        log(f"study: probes: {len(jobs)} runs ({len(todo)} to do) -> {folder} ({launcher})")
    if todo:
        outcomes = (_serial_outcomes(todo, cache_dir) if launcher == "serial"
                    else _ray_outcomes(todo, cache_dir, address, workers))
        with tqdm(total=len(todo), desc="probes", disable=not progress) as bar:
            for (probe, scenario, seed, _), path, df, exc in outcomes:
                if exc is None:
                    _write_parquet(path, df)
                else:
                    text = (str(exc).strip().splitlines() or [""])[0]
                    failed.append({"probe": probe, "scenario": scenario, "seed": seed,
                                   "error": f"{type(exc).__name__}: {text}"})
                    log(f"  probe {probe} {scenario} seed {seed} FAILED: {failed[-1]['error']}")
                bar.update(1)
    return {"files": files, "failed": failed, "seconds": probe_seconds(folder, files)}


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    """Write to a temporary name, then rename: a killed run leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def load_probes(folder: str | Path, files: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """{"evaluator": frame, "search": frame} from the stored probe files (empty frames if none)."""
    folder = Path(folder)
    out = {"evaluator": [], "search": []}
    if folder.is_dir():
        for p in sorted(folder.glob("*.parquet")):
            if files is not None and p.name not in files:
                continue
            kind = p.name.split(".", 1)[0]
            if kind in out:
                out[kind].append(pd.read_parquet(p))
    cols = {"evaluator": EVALUATOR_COLUMNS, "search": SEARCH_COLUMNS}
    return {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame(columns=list(cols[k])))
            for k, v in out.items()}
