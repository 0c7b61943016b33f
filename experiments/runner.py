"""The runner: one *cell* of an experiment, streamed through the vector env.

A cell is (scenario + world overrides, agent name + config, seed, total requests, batch size,
metrics window). :func:`run_cell` builds ``VectorRerankEnv(batch, scenario, **world)``, resets
it with the cell's seed, builds the agent from the registry, and serves ``requests`` requests in
steps of ``batch``::

    obs = env.reset(seed)
    loop:  slates = agent.act(obs)                  # timed (perf_counter)
           obs', reward, ..., info = env.step(slates)
           agent.observe(Feedback(labels only))     # never info["truth"]
           agent.on_period(requests_done)           # if the agent has an int ``period``

and returns a tidy :class:`pandas.DataFrame` with one row per metrics window (see
:data:`COLUMNS`). Truth (true click probabilities, the reference slate's expected reward) is
read by the runner for the metrics only.

Determinism: the same :class:`CellSpec` gives the same DataFrame, bit for bit, except the
columns in :data:`TIMING_COLUMNS` (wall-clock measurements). Common random numbers come from
the env: every agent on the same seed meets the same users, candidates and drift.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..envs import Feedback, VectorRerankEnv, WorldConfig, make_config

#: Wall-clock columns: they differ between runs of the same cell. Drop them to compare runs.
TIMING_COLUMNS = ("act_p50_ms", "act_p99_ms", "requests_per_s")

#: Columns a launcher adds that say *where* a cell ran (differ between runs too).
PLACEMENT_COLUMNS = ("node_id",)

#: Every column that may differ between two runs of the same cell.
VOLATILE_COLUMNS = TIMING_COLUMNS + PLACEMENT_COLUMNS

#: Columns of :func:`run_cell`'s DataFrame, in order (one row per metrics window).
COLUMNS = (
    "cell_id",  # stable id of the cell (see CellSpec.cell_id)
    "scenario",
    "agent",  # registry name
    "label",  # agent name plus its config, e.g. "last(steps=4)"; names a grid's agent entry
    "seed",
    "window",  # 0-based index of the metrics window
    "tick_start",  # simulated time (ticks = requests since reset) of the window's first request
    "tick_end",  # exclusive end tick of the window
    "requests",  # requests served in the window
    "reward_per_request",  # observed reward: clicks + weighted conversions landing now
    "ctr",  # clicks / (K * requests)
    "conversions_per_request",  # delayed conversions that landed in the window, per request
    "expected_reward",  # truth: expected reward of the served slates, per request
    "reference_reward",  # truth: expected reward of the greedy-on-truth reference, per request
    "regret_per_request",  # reference_reward - expected_reward
    "drift_events",  # events that fired in the window, "kind@tick" joined by ";" ("" if none)
    *TIMING_COLUMNS,  # act() latency percentiles (ms per call) and requests/s of the window
)

#: ``max_steps`` the runner gives the env (long enough for any cell) unless ``world`` sets it.
RUN_MAX_STEPS = 10**9

_DEFAULTS = dict(requests=81_920, batch=256, window=2_048)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same text."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def agent_label(agent: str, config: dict | None) -> str:
    """``agent`` alone, or ``agent(key=value, ...)`` when it has a config (sorted keys)."""
    if not config:
        return agent
    parts = [f"{k}={canonical_json(v)}" for k, v in sorted(config.items())]
    return f"{agent}({', '.join(parts)})"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "x"


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class CellSpec:
    """Everything that defines one cell; JSON-serialisable (``to_dict`` / ``from_dict``).

    ``requests`` and ``window`` are counted in requests and must be whole numbers of batches
    (one env step serves ``batch`` requests). ``world`` holds world-setting overrides on top of
    the scenario (e.g. ``{"n_users": 300}``); ``agent_config`` is the agent's keyword config.
    """

    scenario: str
    agent: str
    seed: int = 0
    requests: int = _DEFAULTS["requests"]
    batch: int = _DEFAULTS["batch"]
    window: int = _DEFAULTS["window"]
    agent_config: dict = field(default_factory=dict)
    world: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, str) or not self.scenario:
            raise ValueError(f"scenario={self.scenario!r} must be a scenario name")
        if not isinstance(self.agent, str) or not self.agent:
            raise ValueError(f"agent={self.agent!r} must be an agent name")
        _check_int("seed", self.seed, 0)
        _check_int("batch", self.batch, 1)
        _check_int("requests", self.requests, 1)
        _check_int("window", self.window, 1)
        for name in ("requests", "window"):
            value = getattr(self, name)
            if value % self.batch:
                lower = max(self.batch, value // self.batch * self.batch)
                raise ValueError(
                    f"{name}={value} is not a whole number of batches of batch={self.batch} "
                    f"(one step serves one batch); use e.g. {name}={lower} or "
                    f"{lower + self.batch}")
        if self.window > self.requests:
            raise ValueError(
                f"window={self.window} exceeds requests={self.requests}; the cell would have no "
                "complete metrics window")
        if not isinstance(self.agent_config, dict):
            raise ValueError(f"agent_config={self.agent_config!r} must be a dict of keywords")
        if not isinstance(self.world, dict):
            raise ValueError(f"world={self.world!r} must be a dict of world settings")
        max_steps = self.world.get("max_steps", RUN_MAX_STEPS)
        if isinstance(max_steps, int) and not isinstance(max_steps, bool) \
                and max_steps < self.requests // self.batch:
            raise ValueError(
                f"world setting max_steps={max_steps} is fewer than the cell's "
                f"{self.requests // self.batch} steps (requests/batch); the episode would "
                "reset mid-cell. Leave max_steps out (the runner sets it) or raise it")
        try:  # JSON-able, so the cell id and the results store can record it
            canonical_json(self.to_dict())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cell settings must be plain JSON values: {exc}") from exc

    # ---- identity ----
    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "agent": self.agent,
            "agent_config": _plain(dict(self.agent_config)),
            "seed": int(self.seed),
            "requests": int(self.requests),
            "batch": int(self.batch),
            "window": int(self.window),
            "world": _plain(dict(self.world)),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CellSpec:
        known = {"scenario", "agent", "agent_config", "seed", "requests", "batch", "window",
                 "world"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown cell setting(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)

    @property
    def label(self) -> str:
        return agent_label(self.agent, self.agent_config)

    @property
    def cell_id(self) -> str:
        """Readable prefix + hash of the canonical JSON: stable across runs and machines."""
        digest = hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:12]
        return f"{_slug(self.scenario)}.{_slug(self.agent)}.s{self.seed}.{digest}"

    @property
    def steps(self) -> int:
        return self.requests // self.batch

    def world_config(self) -> WorldConfig:
        """The :class:`WorldConfig` this cell's env runs (what ``AgentContext.world`` holds).

        ``max_steps`` is :data:`RUN_MAX_STEPS` whatever the cell length (unless ``world`` sets
        it, to at least the cell's steps), so cells of different lengths share a world config
        (and pretrained checkpoints keyed on it).
        """
        return make_config(self.scenario, **{"max_steps": RUN_MAX_STEPS, **self.world})


def _format_events(events: list[dict]) -> str:
    return ";".join(f"{e['kind']}@{int(e['tick'])}" for e in events)


def parse_events(text: str) -> list[tuple[str, int]]:
    """Inverse of the ``drift_events`` column: ``"abrupt@20000;churn@21000"`` -> pairs."""
    out = []
    for part in (text or "").split(";"):
        if part:
            kind, _, tick = part.rpartition("@")
            out.append((kind, int(tick)))
    return out


class _Window:
    """Accumulates one metrics window."""

    def __init__(self, tick_start: int):
        self.tick_start = tick_start
        self.tick_end = tick_start
        self.requests = 0
        self.reward = 0.0
        self.clicks = 0.0
        self.conversions = 0
        self.expected = 0.0
        self.reference = 0.0
        self.act_s: list[float] = []
        self.wall_s = 0.0


def run_cell(spec: CellSpec | dict, cache_dir: str | Path = ".driftrank_cache", threads: int = 1,
             progress: bool = False) -> pd.DataFrame:
    """Run one cell; return its per-window metrics (columns :data:`COLUMNS`).

    ``cache_dir`` is where agents keep pretrained checkpoints (passed in ``AgentContext``);
    ``threads`` caps torch's intra-op threads for the cell (grid cells must not fight over
    cores). ``progress`` shows a tqdm bar over the steps.
    """
    from ..agents import AgentContext, make_agent

    if isinstance(spec, dict):
        spec = CellSpec.from_dict(spec)
    threads = _check_int("threads", threads, 1)
    _set_torch_threads(threads)

    config = spec.world_config()
    env = VectorRerankEnv(spec.batch, config)
    obs, info = env.reset(seed=spec.seed)
    context = AgentContext(world=env.config, seed=spec.seed, cache_dir=Path(cache_dir),
                           threads=threads)
    agent = make_agent(spec.agent, context, **spec.agent_config)
    if getattr(agent, "needs_world", False):
        agent.attach_world(env.world)
    period = getattr(agent, "period", None)
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period <= 0:
        period = None
    on_period = getattr(agent, "on_period", None) if period else None

    k = env.config.slate_size
    steps_per_window = spec.window // spec.batch
    events = list(info.get("drift_events", []))  # fired at reset, before the first request
    rows: list[dict] = []
    win: _Window | None = None
    requests_done = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.steps, desc=spec.label, unit="step", leave=False)

    for step in range(spec.steps):
        t_step = time.perf_counter()
        if win is None:
            win = _Window(int(env.world.tick))
        t0 = time.perf_counter()
        slates = agent.act(obs)
        win.act_s.append(time.perf_counter() - t0)
        obs_served = obs
        obs, reward, _, _, info = env.step(slates)
        truth = info["truth"]
        agent.observe(Feedback(
            request_id=info["request_id"],
            slates=np.asarray(slates),
            clicks=info["clicks"],
            conversions=info["conversions"],
            reward=reward,
            obs=obs_served,
        ))
        before = requests_done
        requests_done += spec.batch
        if on_period is not None and requests_done // period > before // period:
            on_period(requests_done)

        rid = info["request_id"]
        win.tick_end = int(rid[-1]) + 1
        win.requests += spec.batch
        win.reward += float(np.sum(reward, dtype=np.float64))
        win.clicks += float(np.sum(info["clicks"], dtype=np.float64))
        win.conversions += len(info["conversions"])
        win.expected += float(np.sum(truth["expected_reward"], dtype=np.float64))
        win.reference += float(np.sum(truth["reference_reward"], dtype=np.float64))
        events.extend(info.get("drift_events", []))
        win.wall_s += time.perf_counter() - t_step
        if (step + 1) % steps_per_window == 0 or step + 1 == spec.steps:
            rows.append(_window_row(spec, len(rows), win, k, events))
            win = None
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"seed": "int64", "window": "int64", "tick_start": "int64",
                      "tick_end": "int64", "requests": "int64"})


def _window_row(spec: CellSpec, index: int, win: _Window, k: int, events: list[dict]) -> dict:
    n = win.requests
    inside = [e for e in events if win.tick_start <= int(e["tick"]) < win.tick_end]
    act_ms = np.asarray(win.act_s) * 1000.0
    return {
        "cell_id": spec.cell_id,
        "scenario": spec.scenario,
        "agent": spec.agent,
        "label": spec.label,
        "seed": spec.seed,
        "window": index,
        "tick_start": win.tick_start,
        "tick_end": win.tick_end,
        "requests": n,
        "reward_per_request": win.reward / n,
        "ctr": win.clicks / (k * n),
        "conversions_per_request": win.conversions / n,
        "expected_reward": win.expected / n,
        "reference_reward": win.reference / n,
        "regret_per_request": (win.reference - win.expected) / n,
        "drift_events": _format_events(inside),
        "act_p50_ms": float(np.percentile(act_ms, 50)),
        "act_p99_ms": float(np.percentile(act_ms, 99)),
        "requests_per_s": n / win.wall_s if win.wall_s > 0 else math.inf,
    }


def _set_torch_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; numpy-only agents still run
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
