"""The claims the study tests, and how a verdict follows from the numbers.

A :class:`Claim` names a treatment and a control (study agent keys for grid data, judges or
agents for probe data), the metric, the phase of the run it is about, and the scenario roles
that test it. :func:`evaluate` turns the study's data into one row per (claim, scenario):
the paired-by-seed difference (oriented so that *positive means the paper's direction*), its
mean and 95% t-interval, a verdict and a note computed from the data:

- ``reproduced``: the interval lies above zero;
- ``reversed``: the interval lies below zero;
- ``not reproduced``: the interval contains zero (or fewer than two paired seeds);
- ``not run (needs ...)``: the agents, scenarios, columns or probe data are not in the results.

Phases are measured from the first drift event after the start (its tick, not its window):
``post`` = windows that start at or after it, ``early``/``late`` = the first/last third of
those, ``all`` = every window. A scenario with no event in the cell uses every window and the
note says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .runner import parse_events
from .statistics import mean_ci, paired

REPRODUCED, NOT_REPRODUCED, REVERSED = "reproduced", "not reproduced", "reversed"
TRUTH = "expected_reward"  # the runner's true expected reward of the served slates


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    says: str
    roles: tuple[str, ...]  # scenario roles of the study config that test it
    treatment: str
    control: str
    metric: str = TRUTH
    phase: str = "post"
    source: str = "grid"  # "grid", "evaluator" (probe) or "search" (probe)
    lower_is_better: bool = False
    scale: float = 1.0  # shown value = scale x difference
    unit: str = "reward/req"
    variant: str = "history"
    contrast_variant: str | None = None  # claim about (history gain) - (this variant's gain)


CLAIMS: tuple[Claim, ...] = (
    Claim("R2.1", "ReLoop2", "the error memory lowers the evaluator's post-shift log-loss",
          ("item",), "memory", "base", "logloss", source="evaluator",
          lower_is_better=True, scale=1000, unit="log-loss x1000"),
    Claim("R2.2", "ReLoop2", "the error memory raises the evaluator's AUC (+0.1 to +0.8 points "
          "on real data)", ("item",), "memory", "base", "auc", source="evaluator",
          scale=100, unit="AUC points"),
    Claim("R2.3", "ReLoop2", "right after a shift the memory beats incremental retraining",
          ("item",), "memory", "incremental", "auc", phase="early", source="evaluator",
          scale=100, unit="AUC points"),
    Claim("R2.4", "ReLoop2", "later, incremental retraining catches up with the memory",
          ("item",), "incremental", "memory", "auc", phase="late", source="evaluator",
          scale=100, unit="AUC points"),
    Claim("R2.5", "ReLoop2", "memory + incremental beats incremental alone",
          ("item",), "incremental+memory", "incremental", "auc", source="evaluator",
          scale=100, unit="AUC points"),
    Claim("R2.6", "ReLoop2", "memory + incremental beats the memory alone",
          ("item",), "incremental+memory", "memory", "auc", source="evaluator",
          scale=100, unit="AUC points"),
    Claim("R2.7", "ReLoop2", "serving with the compensated judge beats the frozen ranker",
          ("item",), "reloop2", "static"),
    Claim("RL.1", "ReLoop", "the self-correction loss beats plain incremental retraining",
          ("taste", "item"), "reloop", "incremental"),
    Claim("L.1", "LAST", "served slates beat the unperturbed generator by evaluator score",
          ("taste", "item"), "last", "static", "evaluator_score", phase="all", source="search",
          unit="evaluator score"),
    Claim("L.2", "LAST", "served slates beat best-of-N (no gradient) by evaluator score",
          ("taste", "item"), "last", "best-of-n", "evaluator_score", phase="all",
          source="search", unit="evaluator score"),
    Claim("L.3", "LAST", "in truth, with a stale evaluator, LAST beats the static generator",
          ("taste", "item", "cold", "delayed"), "last", "static"),
    Claim("L.4", "LAST", "in truth, with a stale evaluator, LAST beats best-of-N",
          ("taste", "item", "cold", "delayed"), "last", "best-of-n"),
    Claim("L.5", "LAST", "in truth, with a refreshed evaluator, LAST beats the static generator",
          ("taste", "item", "delayed"), "last-refresh", "static"),
    Claim("L.6", "LAST", "in truth, with a refreshed evaluator, LAST beats best-of-N",
          ("taste", "item", "delayed"), "last-refresh", "best-of-n"),
    Claim("L.7", "LAST", "under delayed feedback LAST (no labels needed) beats retraining",
          ("delayed",), "last", "incremental"),
    Claim("D.1", "DRN", "dueling-bandit exploration beats no exploration online",
          ("returns",), "drn", "drn-no-explore", phase="all"),
    Claim("D.2", "DRN", "the activeness reward raises users' return rate vs click-only "
          "(beta = 0)", ("returns",), "drn", "drn-click-only", "return_gap", phase="all",
          lower_is_better=True, unit="ticks between a user's visits"),
    Claim("F.1", "flagship", "last+reloop2 beats LAST alone",
          ("taste", "item", "cold", "delayed"), "last+reloop2", "last"),
    Claim("F.2", "flagship", "last+reloop2 beats ReLoop2 alone",
          ("taste", "item", "cold", "delayed"), "last+reloop2", "reloop2"),
    Claim("F.3", "flagship", "last+reloop2 beats incremental retraining",
          ("taste", "item", "cold", "delayed"), "last+reloop2", "incremental"),
    Claim("M.1", "adapters", "a bottleneck patch trained on the stream beats the frozen ranker",
          ("cold",), "adapter", "static"),
    Claim("M.2", "adapters", "a bottleneck patch beats retraining the whole models",
          ("cold",), "adapter", "incremental"),
    Claim("M.3", "FiLM", "feature modulation from recent residuals beats the frozen ranker",
          ("cold",), "film", "static"),
    Claim("M.4", "MAML", "a meta-learned init with per-user fast adaptation beats the frozen "
          "ranker on cold users and items", ("cold",), "maml", "static"),
    Claim("C.1", "control", "adaptation gains less when features reveal the taste "
          "(history-world gain of last+reloop2 over static minus taste-world gain)",
          ("taste",), "last+reloop2", "static", contrast_variant="taste"),
)


# ---------------------------------------------------------------------------------- statistics
def paired_difference(treatment: pd.Series, control: pd.Series) -> dict:
    """Mean and 95% t-interval of ``treatment - control`` over the seeds both have.

    Both series are indexed by seed; unpaired seeds are dropped (pairing is what cancels the
    common random numbers)."""
    diff = paired(treatment, control).astype(float)
    m, lo, hi, n = mean_ci(diff.to_numpy())
    return {"mean": m, "lo": lo, "hi": hi, "n": n, "diffs": diff}


def verdict(mean: float, lo: float, hi: float, n: int) -> str:
    """Reproduced if the 95% interval is above zero, reversed if below, else not reproduced."""
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_REPRODUCED
    if lo > 0:
        return REPRODUCED
    if hi < 0:
        return REVERSED
    return NOT_REPRODUCED


# ---------------------------------------------------------------------------------- phases
def first_event(windows: pd.DataFrame) -> int | None:
    """Tick of the first drift event after the start in these windows (None if none)."""
    ticks = [t for text in windows["drift_events"].dropna().unique()
             for _, t in parse_events(text) if t > 0]
    return min(ticks) if ticks else None


def phase_windows(windows: pd.DataFrame, phase: str, event: int | None) -> pd.DataFrame:
    """The rows of one scenario's windows in ``phase`` (see the module doc)."""
    if phase == "all" or event is None:
        return windows
    if phase not in ("post", "early", "late"):
        raise ValueError(f"phase={phase!r}; choose all, post, early or late")
    post = windows[windows["tick_start"] >= event]
    if phase == "post":
        return post
    starts = np.sort(post["tick_start"].unique())
    third = max(1, len(starts) // 3)
    keep = starts[:third] if phase == "early" else starts[-third:]
    return post[post["tick_start"].isin(keep)]


def per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    """One value per seed: the request-weighted mean of ``metric`` over the rows."""
    w = rows["requests"].astype(float) if "requests" in rows else pd.Series(1.0, rows.index)
    v = rows[metric].astype(float)
    ok = np.isfinite(v)
    g = pd.DataFrame({"seed": rows["seed"][ok], "wv": (w * v)[ok], "w": w[ok]})
    s = g.groupby("seed").sum()
    return s["wv"] / s["w"]


# ---------------------------------------------------------------------------------- data
@dataclass
class StudyData:
    grid: pd.DataFrame  # runner windows + key, variant
    evaluator: pd.DataFrame  # probe rows (judge -> key)
    search: pd.DataFrame  # probe rows (agent -> key)
    roles: dict[str, list[str]]
    columns: dict[str, str]
    models: dict = field(default_factory=dict)  # "variant/scenario" -> offline-model metrics

    def frame(self, source: str) -> pd.DataFrame:
        if source == "grid":
            return self.grid
        df = self.evaluator if source == "evaluator" else self.search
        if df.empty:
            return df
        name = "judge" if source == "evaluator" else "agent"
        return df.rename(columns={name: "key", "slot": "window"})


def scenario_values(data: StudyData, source: str, metric: str, phase: str, variant: str,
            scenario: str) -> tuple[dict[str, pd.Series], int | None]:
    """Per agent key, one value of ``metric`` per seed over ``phase`` (and the event tick)."""
    df = data.frame(source)
    if df.empty:
        return {}, None
    sdf = df[(df["variant"] == variant) & (df["scenario"] == scenario)]
    if sdf.empty or metric not in sdf:
        return {}, None
    event = first_event(sdf)
    rows = phase_windows(sdf, phase, event)
    return {k: per_seed(g, metric) for k, g in rows.groupby("key")}, event


def headroom(data: StudyData, scenario: str, variant: str = "history") -> dict | None:
    """oracle - stale-oracle in truth after the first event, paired by seed (None if absent)."""
    vals, _ = scenario_values(data, "grid", TRUTH, "post", variant, scenario)
    if "oracle" not in vals or "stale-oracle" not in vals:
        return None
    return paired_difference(vals["oracle"], vals["stale-oracle"])


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.{digits}f}"


def _interval(d: dict, scale: float = 1.0, digits: int = 3) -> str:
    m, lo, hi = d["mean"] * scale, d["lo"] * scale, d["hi"] * scale
    if not math.isfinite(lo):
        return f"{_fmt(m, digits)} (n={d['n']}, no interval)"
    return f"{_fmt(m, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}] (n={d['n']})"


# ---------------------------------------------------------------------------------- evaluate
def evaluate(data: StudyData, claims=CLAIMS) -> list[dict]:
    """One row per (claim, scenario): paper / scenario / measured / verdict / note."""
    rows = []
    for claim in claims:
        scenarios = [s for role in claim.roles for s in data.roles.get(role, [])]
        scenarios = list(dict.fromkeys(scenarios))
        if not scenarios:
            rows.append(_row(claim, "-", None, f"not run (needs a scenario for role "
                                               f"{'/'.join(claim.roles)})", ""))
            continue
        for scenario in scenarios:
            rows.append(_evaluate_one(data, claim, scenario))
    return rows


def _row(claim: Claim, scenario: str, diff: dict | None, verdict_text: str, note: str) -> dict:
    return {"id": claim.id, "paper": claim.paper, "says": claim.says, "scenario": scenario,
            "treatment": claim.treatment, "control": claim.control, "unit": claim.unit,
            "measured": _interval(diff, claim.scale) if diff else "-",
            "mean": diff["mean"] * claim.scale if diff else math.nan,
            "lo": diff["lo"] * claim.scale if diff else math.nan,
            "hi": diff["hi"] * claim.scale if diff else math.nan,
            "n": diff["n"] if diff else 0, "verdict": verdict_text, "note": note}


def _needs(claim: Claim, data: StudyData, scenario: str, vals: dict, variant: str) -> str | None:
    metric = data.columns.get(claim.metric, claim.metric)
    df = data.frame(claim.source)
    if claim.source != "grid" and df.empty:
        return f"the {claim.source} probe's results"
    if df.empty or scenario not in set(df[df["variant"] == variant]["scenario"]):
        what = "probe on" if claim.source != "grid" else "results for"
        return f"{what} scenario {scenario}" + (f" ({variant} world)"
                                                 if variant != "history" else "")
    if metric not in df.columns:
        return f"a {metric!r} column in the results"
    absent = [k for k in (claim.treatment, claim.control) if k not in vals]
    if absent:
        return " and ".join(absent) + f" on {scenario}"
    return None


def _evaluate_one(data: StudyData, claim: Claim, scenario: str) -> dict:
    metric = data.columns.get(claim.metric, claim.metric)
    variants = [claim.variant] + ([claim.contrast_variant] if claim.contrast_variant else [])
    gains = []
    event = None
    for variant in variants:
        vals, ev = scenario_values(data, claim.source, metric, claim.phase, variant, scenario)
        event = ev if variant == claim.variant else event
        need = _needs(claim, data, scenario, vals, variant)
        if need:
            return _row(claim, scenario, None, f"not run (needs {need})", "")
        t, c = vals[claim.treatment], vals[claim.control]
        if claim.lower_is_better:
            t, c = c, t
        gains.append(t.sub(c).dropna())
    if claim.contrast_variant:
        diff = paired_difference(gains[0], gains[1])
    else:
        diff = paired_difference(gains[0], pd.Series(0.0, index=gains[0].index))
    v = verdict(diff["mean"], diff["lo"], diff["hi"], diff["n"])
    return _row(claim, scenario, diff, v, note(data, claim, scenario, diff, v, event))


def note(data: StudyData, claim: Claim, scenario: str, diff: dict, v: str,
         event: int | None) -> str:
    """The most likely reason, from the data: headroom, interval width, the evaluator's view."""
    parts = []
    if event is None and claim.phase != "all":
        parts.append("no drift event fired in the cell, so every window counts")
    if diff["n"] < 2:
        parts.append("fewer than 2 paired seeds: no interval")
    head = headroom(data, scenario) if claim.source == "grid" else None
    head_text = ""
    if head is not None and math.isfinite(head["mean"]):
        head_text = f"headroom (oracle - stale-oracle) {_interval(head)}"
    if v == REPRODUCED:
        parts.append(f"{claim.treatment} ahead by {diff['mean'] * claim.scale:.3g} "
                     f"{claim.unit}")
        if head_text and head["mean"] > 0 and claim.metric == TRUTH \
                and not claim.contrast_variant:
            parts.append(f"{diff['mean'] / head['mean']:.0%} of the {head_text}")
    elif v == REVERSED:
        parts.append(f"{claim.control} ahead by {-diff['mean'] * claim.scale:.3g} {claim.unit}")
    elif diff["n"] >= 2:
        half = (diff["hi"] - diff["lo"]) / 2 * claim.scale
        if head is not None and not head["lo"] > 0:
            parts.append(f"no measurable {head_text}: little to adapt to")
        elif head_text and head["mean"] > 0:
            parts.append(f"within noise: interval half-width {half:.3g} {claim.unit} = "
                         f"{half / claim.scale / head['mean']:.0%} of the {head_text}")
        else:
            parts.append(f"within noise: interval half-width {half:.3g} {claim.unit}")
    if claim.paper == "LAST" and claim.source == "grid" and claim.control in ("static",
                                                                             "best-of-n"):
        judged, _ = scenario_values(data, "search", "evaluator_score", "all", claim.variant,
                                    scenario)
        if claim.treatment in judged and claim.control in judged:
            d = paired_difference(judged[claim.treatment], judged[claim.control])
            parts.append(f"by the stale evaluator the gap is {_interval(d)}")
    if claim.paper in ("LAST", "ReLoop2", "flagship") and v != REPRODUCED:
        m = data.models.get(f"{claim.variant}/{scenario}", {})
        if "evaluator_spearman" in m:
            auc = m.get("evaluator_auc", math.nan)
            parts.append(f"the evaluator's rank correlation with the truth before the drift "
                         f"is {m['evaluator_spearman']:.2f} (AUC {auc:.3f})")
    return "; ".join(parts)
