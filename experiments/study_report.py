"""``docs/study.md``: the study's document, every number computed here from the stored results.

Sections: the claims table (:mod:`.study_claims`), headroom and each agent's share of it per
scenario and world variant, per-event curves (drop, time to recover 90%, area between an agent's
curve and ``static``'s), the ReLoop2 slot-by-slot figure from the evaluator probe, latency next
to gain, what could not run here, and the time the study took with an estimate for a cluster.
"""

from __future__ import annotations

import heapq
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .runner import parse_events
from .statistics import mean_ci
from .study import GRIDS, PROBES, failures, load_study
from .study_claims import (
    TRUTH,
    StudyData,
    evaluate,
    headroom,
    paired_difference,
    per_seed,
    scenario_values,
)
from .study_probe import JUDGES, load_probes

PRE_WINDOWS = 3  # windows before an event that define its pre-event level
RECOVER = 0.9  # share of the drop an agent must win back to count as recovered
RECURRING = 3  # an event kind firing more often than this in a cell is "recurring" (churn)
CLUSTER_NODES, CLUSTER_CORES = 4, 2  # the cluster the time estimate is for


def _md(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _ci(values, digits: int = 3) -> str:
    m, lo, hi, n = mean_ci(values)
    if n == 0:
        return "-"
    if not math.isfinite(lo):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _config_hash(config: dict) -> str:
    import hashlib

    from .runner import canonical_json

    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:12]


def _order(keys, config: dict) -> list[str]:
    present = set(keys)
    return [k for k in config["agents"] if k in present]


# ---------------------------------------------------------------------------------- headroom
def headroom_rows(data: StudyData, config: dict) -> list[list]:
    rows = []
    g = data.grid
    if g.empty:
        return rows
    for (variant, scenario), _ in g.groupby(["variant", "scenario"], sort=False):
        head = headroom(data, scenario, variant)
        vals, event = scenario_values(data, "grid", TRUTH, "post", variant, scenario)
        head_text = "not run (needs oracle and stale-oracle)" if head is None else \
            f"{head['mean']:.3f} [{head['lo']:.3f}, {head['hi']:.3f}]"
        for key in _order(vals, config):
            if key in ("oracle", "stale-oracle", "static"):
                continue
            if "static" not in vals:
                rows.append([variant, scenario, head_text, key, "not run (needs static)", "-"])
                continue
            d = paired_difference(vals[key], vals["static"])
            gain = f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]" \
                if math.isfinite(d["lo"]) else f"{d['mean']:+.3f}"
            share = "-"
            if head is not None and head["mean"] > 0:
                share = f"{d['mean'] / head['mean']:.0%} [{d['lo'] / head['mean']:.0%}, " \
                        f"{d['hi'] / head['mean']:.0%}]" if math.isfinite(d["lo"]) else \
                        f"{d['mean'] / head['mean']:.0%}"
            rows.append([variant, scenario, head_text, key, gain, share])
    return rows


# ---------------------------------------------------------------------------------- events
def _events(sdf: pd.DataFrame) -> list[tuple[str, int]]:
    found = set()
    for text in sdf["drift_events"].dropna().unique():
        found.update(parse_events(text))
    kinds = pd.Series([k for k, t in found if t > 0]).value_counts()
    return sorted(((k, t) for k, t in found if t > 0 and kinds.get(k, 0) <= RECURRING),
                  key=lambda e: e[1])


def event_response(cell: pd.DataFrame, tick: int, next_tick: float) -> dict:
    """One cell's response to an event at ``tick`` (windows sorted): pre-event level, drop
    (pre minus the post-event minimum, in truth), requests until 90% of the drop is won back
    (None: never, before the next event or the end; NaN: no drop), measured from the tick."""
    pre = cell[cell["tick_end"] <= tick].tail(PRE_WINDOWS)
    post = cell[(cell["tick_start"] >= tick) & (cell["tick_start"] < next_tick)]
    if pre.empty or post.empty:
        return {"pre": math.nan, "drop": math.nan, "t90": math.nan}
    level = float(np.average(pre[TRUTH], weights=pre["requests"]))
    values = post[TRUTH].to_numpy()
    i_min = int(np.argmin(values))
    drop = level - float(values[i_min])
    if not drop > 0:
        return {"pre": level, "drop": drop, "t90": math.nan}
    target = values[i_min] + RECOVER * drop
    later = np.nonzero(values[i_min:] >= target)[0]
    t90 = None if later.size == 0 else float(post["tick_end"].iloc[i_min + later[0]] - tick)
    return {"pre": level, "drop": drop, "t90": t90}


def event_rows(data: StudyData, config: dict) -> list[list]:
    rows = []
    g = data.grid
    if g.empty:
        return rows
    for (variant, scenario), sdf in g.groupby(["variant", "scenario"], sort=False):
        events = _events(sdf)
        for i, (kind, tick) in enumerate(events):
            nxt = events[i + 1][1] if i + 1 < len(events) else math.inf
            span = sdf[(sdf["tick_start"] >= tick) & (sdf["tick_start"] < nxt)]
            base = None
            if "static" in set(sdf["key"]):
                s = span[span["key"] == "static"]
                base = s.assign(a=s[TRUTH] * s["requests"]).groupby("seed")["a"].sum()
            for key in _order(sdf["key"], config):
                drops, t90s, never = [], [], 0
                kdf = sdf[sdf["key"] == key]
                for _, cell in kdf.groupby("seed"):
                    r = event_response(cell.sort_values("window"), tick, nxt)
                    drops.append(r["drop"])
                    if r["t90"] is None:
                        never += 1
                    elif math.isfinite(r["t90"]):
                        t90s.append(r["t90"])
                no_drop = sum(1 for d in drops if not d > 0)
                rec = _ci(t90s, 0) if t90s else "-"
                rec += f" ({len(t90s)} rec., {never} not, {no_drop} no drop)"
                area = "-"
                if base is not None and key != "static":
                    s = span[span["key"] == key]
                    a = s.assign(a=s[TRUTH] * s["requests"]).groupby("seed")["a"].sum()
                    d = paired_difference(a, base)
                    area = _ci(d["diffs"], 0)
                rows.append([variant, scenario, f"{kind}@{tick:,}", key, _ci(drops), rec, area])
    return rows


def plot_curves(data: StudyData, config: dict, out: Path) -> list[tuple[str, str]]:
    """Per (variant, scenario): truth per window, mean over seeds, events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    g = data.grid
    if g.empty:
        return made
    for (variant, scenario), sdf in g.groupby(["variant", "scenario"], sort=False):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for key in _order(sdf["key"], config):
            k = sdf[sdf["key"] == key].groupby("window")
            x = (k["tick_start"].first() + k["tick_end"].first()) / 2
            ax.plot(x, k[TRUTH].mean(), lw=1.5, label=key,
                    ls="--" if key in ("oracle", "stale-oracle") else "-")
        for kind, tick in _events(sdf):
            ax.axvline(tick, color="tab:red", ls=":", lw=1)
            ax.text(tick, ax.get_ylim()[1], kind, fontsize=7, color="tab:red", va="top")
        ax.set_xlabel("requests served (ticks)")
        ax.set_ylabel("true expected reward per request")
        ax.set_title(f"{scenario} ({variant} features): mean over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        name = f"study_{_slug(variant)}_{_slug(scenario)}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        made.append((f"{scenario} ({variant})", name))
    return made


def plot_probe(evaluator: pd.DataFrame, out: Path) -> list[tuple[str, str]]:
    """ReLoop2's figure: AUC per slot of the four judges (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for scenario, sdf in evaluator.groupby("scenario", sort=False):
        fig, ax = plt.subplots(figsize=(9, 4))
        for judge in JUDGES:
            j = sdf[sdf["judge"] == judge].groupby("slot")
            if not len(j):
                continue
            ax.plot(j["tick_end"].first(), 100 * j["auc"].mean(), marker="o", ms=3,
                    label=judge)
        ticks = [t for text in sdf["drift_events"].dropna().unique()
                 for _, t in parse_events(text) if t > 0]
        for t in sorted(set(ticks))[:RECURRING + 1]:
            ax.axvline(t, color="tab:red", ls=":", lw=1)
        ax.set_xlabel("end of slot (ticks)")
        ax.set_ylabel("AUC x 100")
        ax.set_title(f"{scenario}: evaluator AUC per slot (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"study_probe_{_slug(scenario)}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        made.append((scenario, name))
    return made


# ---------------------------------------------------------------------------------- latency
def latency_rows(data: StudyData, config: dict) -> list[list]:
    g = data.grid[data.grid["variant"] == "history"] if not data.grid.empty else data.grid
    if g.empty:
        return []
    lat = g.groupby("key")["act_p50_ms"].median()
    static_ms = lat.get("static", math.nan)
    rows = []
    for key in _order(lat.index, config):
        gains = []
        for scenario, sdf in g.groupby("scenario"):
            if key not in set(sdf["key"]) or "static" not in set(sdf["key"]):
                continue
            vals, _ = scenario_values(data, "grid", TRUTH, "post", "history", scenario)
            gains.append(paired_difference(vals[key], vals["static"])["mean"])
        ms = float(lat[key])
        rows.append([key, f"{ms:.2f}", f"{ms / config['batch'] * 1000:.0f}",
                     f"{ms / static_ms:.1f}x" if static_ms > 0 else "-",
                     f"{np.mean(gains):+.3f} ({len(gains)} scen.)" if gains else "-"])
    return rows


# ---------------------------------------------------------------------------------- timing
def cell_seconds(grid: pd.DataFrame) -> pd.Series:
    """Measured compute seconds per cell: sum over its windows of requests / (requests/s)."""
    if grid.empty:
        return pd.Series(dtype=float)
    s = grid["requests"] / grid["requests_per_s"].replace(0, np.nan)
    return s.groupby(grid["cell_id"]).sum()


def makespan(seconds, slots: int) -> float:
    """Longest-processing-time-first schedule of ``seconds`` jobs on ``slots`` workers."""
    heap = [0.0] * max(1, slots)
    for s in sorted(seconds, reverse=True):
        heapq.heappush(heap, heapq.heappop(heap) + float(s))
    return max(heap)


def timing_text(data: StudyData, state: dict) -> list[str]:
    runs = state.get("runs", [])
    wall = sum(r["wall_s"] for r in runs)
    cells = cell_seconds(data.grid)
    probe_s = sum(state.get("probes", {}).get("seconds", {}).values())
    cut = sum(1 for r in runs if not r.get("finished", True))
    interrupted = f", {cut} of them interrupted (counted up to their last finished block)" \
        if cut else ""
    lines = [f"- Wall time of `driftrank study` on this machine: {wall / 60:.1f} min over "
             f"{len(runs)} invocation(s){interrupted} (launchers: "
             f"{', '.join(sorted({r['launcher'] for r in runs})) or '-'}); the cells took "
             f"{cells.sum() / 60:.1f} CPU-minutes in all ({len(cells)} cells, median "
             f"{cells.median() if len(cells) else math.nan:.1f} s, longest "
             f"{cells.max() if len(cells) else math.nan:.1f} s), the probes "
             f"{probe_s / 60:.1f} min."]
    if len(cells):
        slots = CLUSTER_NODES * CLUSTER_CORES
        probes = list(state.get("probes", {}).get("seconds", {}).values())
        span = makespan(cells.to_numpy(), slots) + makespan(probes, slots)
        parallel = (state["machine"].get("cores") or 1) if any(
            r["launcher"] == "ray" for r in runs) else 1
        other = max(0.0, wall - (cells.sum() + probe_s) / parallel) if runs else 0.0
        lines.append(
            f"- On a {CLUSTER_NODES}-node Ray cluster of {CLUSTER_CORES}-core nodes "
            f"({slots} tasks at a time, `--address`), cells and probes would take about "
            f"{span / 60:.1f} min (longest-first schedule of the measured times), plus "
            f"pretraining in the driver and start-up (about {other / 60:.1f} min here, an upper "
            f"bound: it includes waiting on a busy machine): about "
            f"{(span + other) / 60:.0f} min.")
    return lines


# ---------------------------------------------------------------------------------- document
def write_study(out: str | Path, doc: str | Path = "docs/study.md",
                figures: str | Path | None = None) -> Path:
    """Write the study document for the study folder ``out``; return its path."""
    out = Path(out)
    grid, state = load_study(out)
    config = state["config"]
    order = [k for k in state.get("agent_order", []) if k in config["agents"]]
    config["agents"] = {k: config["agents"][k] for k in order + sorted(
        set(config["agents"]) - set(order))}  # tables and legends in the study's own order
    probes = load_probes(out / PROBES, state.get("probes", {}).get("files"))
    data = StudyData(grid=grid, evaluator=probes["evaluator"], search=probes["search"],
                     roles=config["roles"], columns=config.get("columns", {}),
                     models=state.get("models", {}))
    doc = Path(doc)
    fig_dir = Path(figures) if figures else doc.parent
    fig_dir.mkdir(parents=True, exist_ok=True)
    doc.parent.mkdir(parents=True, exist_ok=True)

    def rel(name: str) -> str:
        return str((fig_dir / name).resolve().relative_to(doc.parent.resolve())) \
            if (fig_dir / name).resolve().is_relative_to(doc.parent.resolve()) \
            else str((fig_dir / name).resolve())

    m = state["machine"]
    seeds = config["seeds"]
    lines = [
        f"# driftrank study v{config['version']}"
        + (" (quick smoke run: tiny world, not the study's numbers)" if state.get("quick")
           else ""), "",
        "Each paper's claim re-run in the simulator. Generated by `driftrank study` from the "
        f"results in `{out}`; every number below is computed from them. "
        f"{len(seeds)} paired seeds ({', '.join(map(str, seeds))}); "
        f"{config['requests']:,} requests per cell in batches of {config['batch']}, metrics "
        f"window {config['window']:,} requests; world {config.get('world', {})}.", "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}. "
        f"Study config hash `{_config_hash(config)}` (changes whenever the study does).", "",
        *timing_text(data, state), "",
        "Measured = mean [95% t-interval] over seeds of the paired difference treatment - "
        "control (same seed = same users, candidates and drift), signed so that positive is "
        "the paper's direction. Verdict: *reproduced* if the interval is above 0, *reversed* "
        "if below, *not reproduced* if it contains 0. Truth metrics are the true expected "
        "reward per request of the served slates, after the first drift event.", "",
        "## Claims", "",
    ]
    claim_rows = evaluate(data)
    counts = pd.Series([r["verdict"].split(" (")[0] for r in claim_rows]).value_counts()
    lines += [f"{len(claim_rows)} rows: " + ", ".join(f"{n} {v}" for v, n in counts.items())
              + ".", ""]
    lines.append(_md(["id", "paper says", "scenario", "treatment vs control", "measured",
                      "verdict", "note"],
                     [[r["id"], f"{r['paper']}: {r['says']}", r["scenario"],
                       f"{r['treatment']} vs {r['control']}",
                       f"{r['measured']} {r['unit']}" if r["measured"] != "-" else "-",
                       f"**{r['verdict']}**", r["note"]] for r in claim_rows]))
    if data.models:
        lines += ["", "## Offline models", "",
                  "Held-out metrics of the pretrained evaluator and generator each world "
                  "served with (pre-drift world; Spearman = rank correlation of the "
                  "evaluator's slate score with the true expected reward over permutations).",
                  ""]
        cols = ["evaluator_auc", "evaluator_spearman", "generator_true_reward",
                "behaviour_true_reward", "reference_true_reward"]
        lines.append(_md(["world/scenario", *cols],
                         [[name, *(f"{m[c]:.3f}" if c in m else "-" for c in cols)]
                          for name, m in data.models.items()]))
    lines += ["", "## Headroom and each agent's share of it", "",
              "Headroom = oracle - stale-oracle (truth, after the first event): what a ranker "
              "loses by not updating. Gain = agent - static, paired by seed; share = gain / "
              "mean headroom. The `taste` variant is the control world (`user_features="
              "\"taste\"`), where features reveal the current taste and adaptation should gain "
              "little.", ""]
    hr = headroom_rows(data, config)
    lines += [_md(["world", "scenario", "headroom", "agent", "gain vs static", "share"], hr)
              if hr else "No grid results yet.", ""]

    lines += ["## Around each drift event", "",
              f"Drop = pre-event level (last {PRE_WINDOWS} windows before the tick) minus the "
              f"lowest window after it; recovery = requests from the tick until "
              f"{RECOVER:.0%} of the drop is won back (windows that start at or after the tick; "
              f"'not' = never before the next event or the end); area = extra expected reward "
              f"summed over the requests until the next event, agent minus static. Kinds that "
              f"fire more than {RECURRING} times per cell (churn) are left to the curves.", ""]
    er = event_rows(data, config)
    lines += [_md(["world", "scenario", "event", "agent", "drop", "requests to recover 90%",
                   "area vs static"], er) if er else "No labelled event in these runs.", ""]
    for title, name in plot_curves(data, config, fig_dir):
        lines += [f"![{title}]({rel(name)})", ""]

    lines += ["## ReLoop2, slot by slot (evaluator probe)", "",
              "Per slot (metrics window) the log-loss and AUC of the pretrained evaluator "
              "(`base`), the same with the error memory (`memory`), a copy retrained once per "
              "period (`incremental`) and that copy with its own memory, on the impressions the "
              "frozen generator served (prequential: predict, then write).", ""]
    ev = data.evaluator
    if ev.empty:
        lines += ["Not run (needs the evaluator probe's results).", ""]
    else:
        rows = []
        for scenario, sdf in ev.groupby("scenario", sort=False):
            for judge in JUDGES:
                j = sdf[sdf["judge"] == judge]
                rows.append([scenario, judge, _ci(per_seed(j, "logloss")),
                             _ci(100 * per_seed(j, "auc"), 2)])
        lines += [_md(["scenario", "judge", "log-loss (all slots)", "AUC x100 (all slots)"],
                      rows), ""]
        for title, name in plot_probe(ev, fig_dir):
            lines += [f"![{title}]({rel(name)})", ""]

    lines += ["## Latency next to gain", "",
              "act() p50 per call (median over windows and cells) and per request, its ratio to "
              "static's, and the mean gain in truth over static across the scenarios it ran.", ""]
    lr = latency_rows(data, config)
    lines += [_md(["agent", "act p50 ms/call", "us/request", "x static", "gain vs static"], lr)
              if lr else "No grid results yet.", ""]

    lines += ["## What did not run", ""]
    missing = [(name, b["missing"]) for name, b in state["blocks"].items() if b["missing"]]
    fails = failures(out)
    probe_fails = state.get("probes", {}).get("failed", [])
    if not missing and not fails and not probe_fails:
        lines += ["Everything in the study's config ran.", ""]
    for name, what in missing:
        lines.append(f"- block `{name}`: left out here: {'; '.join(what)}")
    for f in fails:
        lines.append(f"- cell `{f['cell_id']}` failed: {f.get('error', '')}")
    for f in probe_fails:
        lines.append(f"- probe {f['probe']} on {f['scenario']} seed {f['seed']} failed: "
                     f"{f['error']}")
    lines += ["", "## Settings", "",
              f"Blocks (grids under `{out / GRIDS}`):", ""]
    for b in config["blocks"]:
        lines.append(f"- `{b['name']}` ({b.get('variant', 'history')} world): "
                     f"{', '.join(b['scenarios'])} x {', '.join(b['agents'])}")
    lines += ["", "Agents:", ""]
    for key, a in config["agents"].items():
        lines.append(f"- `{key}`: `{a['name']}` {a.get('config') or ''}")
    lines += ["", "Re-run with `driftrank study` (or `make study`); finished cells and probes "
              "are kept, so a re-run resumes.", ""]
    doc.write_text("\n".join(lines))
    return doc
