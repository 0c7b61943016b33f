"""The runner: one *cell* of an experiment, streamed through the vector env.

A cell (:class:`~.cell.CellSpec`) is (scenario + world overrides, agent name + config, seed,
total requests, batch size, metrics window, strict serving). :func:`run_cell` builds
``VectorRerankEnv(batch, scenario, **world)``, resets it with the cell's seed, builds the agent
from the registry and drives its lifecycle (:mod:`driftrank.agents.base`)::

    obs = env.reset(seed)                           # events firing at reset are recorded
    agent.attach_world(env.world)                   # only if agent.needs_world
    try:
        loop:  slates = agent.act(obs)              # timed (perf_counter), then checked
               obs', reward, ..., info = env.step(slates)
               agent.observe(Feedback(labels only)) # never info["truth"]
               agent.on_period(requests_done)       # for every multiple of agent.period passed
    finally:
        agent.close()                               # also when the cell fails

and returns a tidy :class:`pandas.DataFrame` with one row per metrics window (see
:data:`COLUMNS`). Truth (true click probabilities, the reference slate's expected reward) is
read by the runner for the metrics only. Slates that break the contract fail the cell with a
:class:`~.slate_contract.SlateContractError` naming the agent, the step and the row.

Determinism: the same :class:`CellSpec` gives the same DataFrame, bit for bit, except the
columns in :data:`TIMING_COLUMNS` (wall-clock measurements). Common random numbers come from
the env: every agent on the same seed meets the same users, candidates and drift.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..agents import AgentContext, make_agent
from ..agents.base import hook, periods_between
from ..envs import Feedback, VectorRerankEnv
from .cell import RUN_MAX_STEPS, CellSpec, agent_label, canonical_json, check_int
from .slate_contract import SlateContractError, check_slates
from .threads import start_of_work

__all__ = ["COLUMNS", "PLACEMENT_COLUMNS", "RUN_MAX_STEPS", "TIMING_COLUMNS",
           "VOLATILE_COLUMNS", "CellSpec", "SlateContractError", "agent_label",
           "canonical_json", "parse_events", "run_cell"]

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
    "ctr",  # clicks made in the window (reported or not yet) / (K * requests)
    "conversions_per_request",  # delayed conversions that landed in the window, per request
    "expected_reward",  # truth: expected reward of the served slates, per request
    "reference_reward",  # truth: expected reward of the greedy-on-truth reference, per request
    "regret_per_request",  # reference_reward - expected_reward
    "drift_events",  # events that fired in the window, "kind@tick" joined by ";" ("" if none)
    "empty_slots_per_request",  # slots left empty by repeated candidates (strict=False only)
    "return_gap",  # mean ticks since the same user's previous visit (returning users only)
    "active_users",  # users still in the population at the window's end (leaving, joining)
    *TIMING_COLUMNS,  # act() latency percentiles (ms per call) and requests/s of the window
)

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
        self.empty_slots = 0
        self.gap_sum = 0.0
        self.gap_count = 0
        self.active_users = 0
        self.expected = 0.0
        self.reference = 0.0
        self.act_s: list[float] = []
        self.wall_s = 0.0


def run_cell(spec: CellSpec | dict, cache_dir: str | Path = ".driftrank_cache", threads: int = 1,
             progress: bool = False) -> pd.DataFrame:
    """Run one cell; return its per-window metrics (columns :data:`COLUMNS`).

    ``cache_dir`` is where agents keep pretrained checkpoints (passed in ``AgentContext``);
    ``threads`` caps torch's intra-op threads for the cell (grid cells must not fight over
    cores): the cell is the boundary where threads are set. ``progress`` shows a tqdm bar over
    the steps. The agent is closed whatever happens.
    """
    if isinstance(spec, dict):
        spec = CellSpec.from_dict(spec)
    threads = check_int("threads", threads, 1)
    start_of_work(threads)

    env = VectorRerankEnv(spec.batch, spec.world_config())
    obs, info = env.reset(seed=spec.seed)
    events = list(info.get("drift_events", []))  # fired at reset, before the first request
    context = AgentContext(world=env.config, seed=spec.seed, cache_dir=Path(cache_dir),
                           threads=threads)
    agent = make_agent(spec.agent, context, **spec.agent_config)
    try:
        rows = _serve(spec, env, obs, agent, events, progress)
    finally:
        hook(agent, "close")()
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"seed": "int64", "window": "int64", "tick_start": "int64",
                      "tick_end": "int64", "requests": "int64"})


def _serve(spec: CellSpec, env: VectorRerankEnv, obs: dict, agent, events: list[dict],
           progress: bool) -> list[dict]:
    """The cell's loop: act, check, step, observe, on_period; one row per metrics window."""
    if getattr(agent, "needs_world", False):
        hook(agent, "attach_world")(env.world)
    period = getattr(agent, "period", None)
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period <= 0:
        period = None
    on_period = hook(agent, "on_period")
    name = getattr(agent, "name", None) or spec.agent
    k, n = env.config.slate_size, env.config.n_candidates
    steps_per_window = spec.window // spec.batch
    rows: list[dict] = []
    win: _Window | None = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.steps, desc=spec.label, unit="step", leave=False)
    try:
        for step in range(spec.steps):
            t_step = time.perf_counter()
            if win is None:
                win = _Window(int(env.world.tick))
            t0 = time.perf_counter()
            slates = agent.act(obs)
            win.act_s.append(time.perf_counter() - t0)
            slates = check_slates(slates, agent=name, step=step, batch=spec.batch,
                                  n_candidates=n, slate_size=k, strict=spec.strict)
            obs_served = obs
            obs, reward, _, _, info = env.step(slates)
            truth = info["truth"]
            agent.observe(Feedback.from_step(info, slates, reward, obs=obs_served))
            done = (step + 1) * spec.batch
            for _ in periods_between(done - spec.batch, done, period):
                on_period(done)

            win.tick_end = int(info["request_id"][-1]) + 1
            win.requests += spec.batch
            win.reward += float(np.sum(reward, dtype=np.float64))
            # made clicks (truth), so CTR means the same whether or not clicks are reported late
            win.clicks += float(np.sum(truth["clicks"], dtype=np.float64))
            gaps = np.asarray(info["return_gap"])
            returning = gaps >= 0
            win.gap_sum += float(np.sum(gaps[returning], dtype=np.float64))
            win.gap_count += int(np.count_nonzero(returning))
            win.active_users = int(info["active_users"])
            win.conversions += len(info["conversions"])
            win.empty_slots += int(np.sum(info["empty_slots"]))
            win.expected += float(np.sum(truth["expected_reward"], dtype=np.float64))
            win.reference += float(np.sum(truth["reference_reward"], dtype=np.float64))
            events.extend(info.get("drift_events", []))
            win.wall_s += time.perf_counter() - t_step
            if (step + 1) % steps_per_window == 0 or step + 1 == spec.steps:
                rows.append(_window_row(spec, len(rows), win, k, events))
                win = None
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return rows


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
        "empty_slots_per_request": win.empty_slots / n,
        "return_gap": win.gap_sum / win.gap_count if win.gap_count else math.nan,
        "active_users": win.active_users,
        "act_p50_ms": float(np.percentile(act_ms, 50)),
        "act_p99_ms": float(np.percentile(act_ms, 99)),
        "requests_per_s": n / win.wall_s if win.wall_s > 0 else math.inf,
    }
