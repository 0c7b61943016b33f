"""``driftrank report RUN_DIR``: Markdown + PNG summary of a grid run.

Writes ``report.md`` and one ``reward_<scenario>.png`` per scenario into the run folder (or
``out_dir``):

- **Summary**: per scenario x agent, the mean over seeds and a 95% t-interval of reward,
  CTR and regret per request, and of act() latency p50/p99 (ms per call; geometric mean, the
  interval on the log scale, so it stays positive). Per seed a cell's value is the
  request-weighted mean over its windows (for latency: of the per-window percentiles).
- **Reward over time**: reward per request per window (mean over seeds, band = 95% interval),
  regret below it, the adaptation headroom below that when it can be measured; drift events
  are vertical lines (abrupt shifts and recall shifts drawn and labelled; catalog churn marked
  as ticks along the bottom, there are too many to draw).
- **Recovery after each abrupt shift**, measured from the shift tick (see
  :func:`~.statistics.recovery`):
  "no drop" when there was nothing to recover from, else the requests until regret is back
  within 5% (relative) of the level just before the shift, or "not recovered".
- **Adaptation headroom**: ``oracle - stale-oracle`` per window and after the first drift event,
  and each agent's gain over ``static`` as a share of it (needs those agents in the grid).
- **Paired differences vs ``static``** (the same seed and scenario, so common random numbers
  cancel most of the noise): mean and 95% interval of the per-seed differences. If ``static``
  is not in the grid, the first agent is the baseline, and the report says so.
- Failed and missing cells, so nothing is silently left out.

Agents are shown by name; where the grid has several entries of one agent, by name plus the
config keys in which they differ (the full configs are listed at the end).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import store
from .cell import slug
from .results import load_results
from .runner import parse_events
from .statistics import (
    PRE_SHIFT_WINDOWS,
    RECOVERY_TOLERANCE,
    log_mean_ci,
    mean_ci,
    paired,
    recovery,
)

BASELINE = "static"
HEADROOM_HIGH = "oracle"  # greedy on the world's current truth
HEADROOM_LOW = "stale-oracle"  # greedy on the truth frozen at the episode's start

METRICS = {  # column -> heading
    "reward_per_request": "reward/req",
    "ctr": "CTR",
    "regret_per_request": "regret/req",
    "act_p50_ms": "act p50 ms",
    "act_p99_ms": "act p99 ms",
}


LOG_SCALE = ("act_p50_ms", "act_p99_ms")


def _fmt(v: float, digits: int) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"


def fmt_ci(m: float, lo: float, hi: float, digits: int = 3) -> str:
    if not np.isfinite(lo):
        return _fmt(m, digits)
    return f"{_fmt(m, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cell_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, label, seed): request-weighted means over the windows."""
    cols = [c for c in METRICS if c in df.columns] + ["conversions_per_request"]
    w = df["requests"].astype(float)
    weighted = df[cols].mul(w, axis=0)
    weighted["requests"] = w
    keys = ["scenario", "label", "seed"]
    g = pd.concat([df[keys], weighted], axis=1).groupby(keys, sort=False).sum()
    out = g[cols].div(g["requests"], axis=0)
    out["requests"] = g["requests"]
    return out.reset_index()


def _order(values, preferred) -> list:
    present = list(dict.fromkeys(values))
    first = [v for v in preferred if v in present]
    return first + [v for v in present if v not in first]


def _labels_of(spec: dict | None) -> list[str]:
    if not spec:
        return []
    from .runner import agent_label

    return [agent_label(a["name"], a.get("config")) for a in spec.get("agents", [])]


def short_labels(spec: dict | None) -> dict[str, str]:
    """Full label -> the name shown in tables: the bare agent name when the grid has one entry
    of that agent, else the name plus only the config keys that differ between its entries."""
    if not spec:
        return {}
    from .runner import agent_label, canonical_json

    agents = spec.get("agents", [])
    out = {}
    for a in agents:
        name, config = a["name"], a.get("config") or {}
        same = [b.get("config") or {} for b in agents if b["name"] == name]
        keys = {k for c in same for k in c}
        differ = {k: config[k] for k in sorted(keys) if k in config and len(
            {canonical_json(c.get(k)) for c in same}) > 1}
        out[agent_label(name, config)] = agent_label(name, differ) if len(same) > 1 else name
    if len(set(out.values())) < len(out):  # cannot happen for a valid grid; be safe
        return {k: k for k in out}
    return out


def _events(df: pd.DataFrame) -> list[tuple[str, int]]:
    out = set()
    for text in df["drift_events"].dropna().unique():
        out.update(parse_events(text))
    return sorted(out, key=lambda e: (e[1], e[0]))


# ---------------------------------------------------------------------------------- recovery
def recovery_table(df: pd.DataFrame, labels: list[str]) -> list[list[str]]:
    """Rows: scenario, shift tick, agent, regret before -> first window after, requests to
    recover (mean [95% interval] over the seeds that dropped and recovered), seed counts."""
    rows = []
    for scenario, sdf in df.groupby("scenario", sort=False):
        shifts = [t for kind, t in _events(sdf) if kind == "abrupt"]
        for i, shift in enumerate(shifts):
            nxt = shifts[i + 1] if i + 1 < len(shifts) else math.inf
            for label in _order(sdf["label"], labels):
                got = [recovery(cell.sort_values("window"), shift, nxt)
                       for _, cell in sdf[sdf["label"] == label].groupby("seed")]
                got = [r for r in got if r.status != "no baseline"]
                if not got:
                    continue  # shift before the first complete window: nothing to compare to
                dropped = [r for r in got if r.status != "no drop"]
                back = [r.requests for r in dropped if r.status == "recovered"]
                if not dropped:
                    text = "no drop"
                elif not back:
                    text = "not recovered"
                else:
                    text = fmt_ci(*mean_ci(back)[:3], digits=0)
                before = fmt_ci(*mean_ci([r.baseline for r in got])[:3], digits=3)
                after = fmt_ci(*mean_ci([r.after for r in got])[:3], digits=3)
                rows.append([scenario, f"{shift:,}", label, before, after, text,
                             f"{len(dropped)}/{len(got)}", f"{len(back)}/{len(dropped)}"])
    return rows


# ---------------------------------------------------------------------------------- headroom
def _agent_label(df: pd.DataFrame, agent: str, labels: list[str]) -> str | None:
    """The first label (in report order) whose registry name is ``agent``."""
    present = df.loc[df["agent"] == agent, "label"]
    order = _order(present, labels)
    return order[0] if order else None


def first_event_tick(sdf: pd.DataFrame) -> int | None:
    """Tick of the first drift event of any kind in a scenario's rows (None: no event)."""
    events = _events(sdf)
    return min(t for _, t in events) if events else None


def _after(cells: pd.DataFrame, tick: int | None) -> pd.Series:
    """Per seed: request-weighted expected reward per request over the windows that start at
    or after ``tick`` (all windows if ``tick`` is None)."""
    rows = cells if tick is None else cells[cells["tick_start"] >= tick]
    w = rows["requests"].astype(float)
    num = (rows["expected_reward"] * w).groupby(rows["seed"]).sum()
    return num / w.groupby(rows["seed"]).sum()


def headroom_by_window(sdf: pd.DataFrame, labels: list[str]) -> pd.DataFrame | None:
    """Per window: oracle minus stale-oracle expected reward per request, paired by seed, mean
    and 95% interval over seeds. None if either agent is missing."""
    hi_label = _agent_label(sdf, HEADROOM_HIGH, labels)
    lo_label = _agent_label(sdf, HEADROOM_LOW, labels)
    if hi_label is None or lo_label is None:
        return None
    hi = sdf[sdf["label"] == hi_label].set_index(["window", "seed"])
    lo = sdf[sdf["label"] == lo_label].set_index(["window", "seed"])
    diff = paired(hi["expected_reward"], lo["expected_reward"])
    ticks = hi[["tick_start", "tick_end"]].groupby(level="window").first()
    rows = []
    for window, d in diff.groupby(level="window"):
        m, low, high, n = mean_ci(d)
        rows.append({"window": window, "tick_start": ticks.loc[window, "tick_start"],
                     "tick_end": ticks.loc[window, "tick_end"], "headroom": m, "lo": low,
                     "hi": high, "seeds": n})
    return pd.DataFrame(rows)


def headroom_tables(df: pd.DataFrame, labels: list[str], scenarios: list[str]):
    """(headroom rows, gain rows, scenarios lacking the two reference agents).

    Headroom = oracle - stale-oracle (expected reward per request, paired by seed) over the
    whole run and over the windows wholly after the first drift event. Each other agent's gain
    over ``static`` on the same windows, and that gain as a share of the headroom (a ratio of
    the means over seeds; "n/a" where the headroom's interval does not exclude zero)."""
    head_rows, gain_rows, lacking = [], [], []
    for scenario in scenarios:
        sdf = df[df["scenario"] == scenario]
        hi_label = _agent_label(sdf, HEADROOM_HIGH, labels)
        lo_label = _agent_label(sdf, HEADROOM_LOW, labels)
        if hi_label is None or lo_label is None:
            lacking.append(scenario)
            continue
        t0 = first_event_tick(sdf)
        cells = {lab: sdf[sdf["label"] == lab] for lab in _order(sdf["label"], labels)}
        whole = mean_ci(paired(_after(cells[hi_label], None), _after(cells[lo_label], None)))
        if t0 is None:
            after = (math.nan, math.nan, math.nan, 0)
        else:
            after = mean_ci(paired(_after(cells[hi_label], t0), _after(cells[lo_label], t0)))
        head_rows.append([scenario, "none" if t0 is None else f"{t0:,}",
                          fmt_ci(*whole[:3], digits=4), fmt_ci(*after[:3], digits=4),
                          str(after[3] if t0 is not None else whole[3])])
        base_label = _agent_label(sdf, BASELINE, labels)
        if base_label is None:
            continue
        ref = whole if t0 is None else after
        for label, cell in cells.items():
            if label in (base_label, hi_label, lo_label):
                continue
            gain = mean_ci(paired(_after(cell, t0), _after(cells[base_label], t0)))
            share = (f"{gain[0] / ref[0]:.0%}" if np.isfinite(ref[1]) and ref[1] > 0
                     else "n/a")
            gain_rows.append([scenario, label, fmt_ci(*gain[:3], digits=4), share,
                              str(gain[3])])
    return head_rows, gain_rows, lacking


# ---------------------------------------------------------------------------------- pairs
PAIRED_COLUMNS = ("reward_per_request", "ctr", "regret_per_request")


def paired_differences(cells: pd.DataFrame, labels: list[str], scenarios: list[str],
                       baseline: str) -> list[list[str]]:
    """Rows: scenario, agent, then per :data:`PAIRED_COLUMNS` the mean [95% interval] over
    seeds of *agent minus baseline*, each difference taken within one seed (the same users,
    candidates and drift: common random numbers cancel), and the number of paired seeds."""
    rows = []
    for scenario in scenarios:
        sc = cells[cells["scenario"] == scenario].set_index(["label", "seed"])
        if baseline not in sc.index.get_level_values(0):
            continue
        base = sc.loc[baseline]
        for label in _order(sc.index.get_level_values(0), labels):
            if label == baseline:
                continue
            other = sc.loc[label]
            seeds = base.index.intersection(other.index)
            if seeds.empty:
                continue
            row = [scenario, label]
            for col in PAIRED_COLUMNS:
                row.append(fmt_ci(*mean_ci(paired(other[col], base[col]))[:3], digits=4))
            row.append(str(len(seeds)))
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------- plots
def plot_scenario(df: pd.DataFrame, scenario: str, labels: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sdf = df[df["scenario"] == scenario]
    head = headroom_by_window(sdf, labels)
    ratios = [3, 2] + ([2] if head is not None else [])
    fig, axes = plt.subplots(len(ratios), 1, figsize=(9, 2.2 + 1.7 * len(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    ax_r, ax_g = axes[0], axes[1]
    if head is not None:
        ax_h = axes[2]
        x = (head["tick_start"] + head["tick_end"]) / 2
        ax_h.plot(x, head["headroom"], color="k", lw=1.5)
        if np.isfinite(head["lo"]).any():
            ax_h.fill_between(x, head["lo"], head["hi"], color="k", alpha=0.15, lw=0)
        ax_h.axhline(0, color="0.5", lw=0.8)
        ax_h.set_ylabel(f"headroom\n({HEADROOM_HIGH} - {HEADROOM_LOW})")
        ax_h.grid(alpha=0.3)
    for label in _order(sdf["label"], labels):
        ldf = sdf[sdf["label"] == label]
        for ax, col in ((ax_r, "reward_per_request"), (ax_g, "regret_per_request")):
            g = ldf.groupby("window")
            x = (g["tick_start"].first() + g["tick_end"].first()) / 2
            stats = [mean_ci(v) for _, v in g[col]]
            m = np.array([s[0] for s in stats])
            lo = np.array([s[1] for s in stats])
            hi = np.array([s[2] for s in stats])
            (line,) = ax.plot(x, m, label=label if ax is ax_r else None, lw=1.5)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    marked = set()
    for kind, tick in _events(sdf):
        if kind == "churn":
            for ax in axes:
                ax.plot([tick], [0], marker="|", color="0.5", ms=8, clip_on=False,
                        transform=ax.get_xaxis_transform(),
                        label="churn" if ax is ax_r and "churn" not in marked else None)
            marked.add("churn")
            continue
        style = {"abrupt": ("tab:red", "--"), "recall_shift": ("tab:purple", ":")}.get(
            kind, ("0.3", "-."))
        for ax in axes:
            ax.axvline(tick, color=style[0], ls=style[1], lw=1.2,
                       label=f"{kind} shift" if ax is ax_r and kind not in marked else None)
        marked.add(kind)
    ax_r.set_ylabel("reward per request")
    ax_g.set_ylabel("regret per request")
    axes[-1].set_xlabel("requests served (simulated ticks)")
    ax_r.set_title(f"{scenario}: reward over time (mean over seeds, band = 95% interval)")
    ax_r.legend(fontsize=8, loc="best")
    ax_r.grid(alpha=0.3)
    ax_g.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- report
def write_report(run_dir: str | Path, out_dir: str | Path | None = None,
                 plots: bool = True) -> Path:
    """Write ``report.md`` and (unless ``plots`` is False) the plots for ``run_dir``; return
    the report's path."""
    run_dir = Path(run_dir)
    df = load_results(run_dir)
    spec = store.read_grid_spec(run_dir)
    failures = store.load_failures(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    if df.empty:
        raise ValueError(f"run folder {str(run_dir)!r} has no finished cells to report "
                         f"({len(failures)} failed); see {run_dir / store.FAILED}")

    short = short_labels(spec)
    df = df.assign(label=df["label"].map(lambda x: short.get(x, x)))
    labels = _order(df["label"], [short.get(x, x) for x in _labels_of(spec)])
    scenarios = _order(df["scenario"], (spec or {}).get("scenarios", []))
    cells = cell_metrics(df)
    lines = [f"# driftrank report: `{run_dir.name}`", ""]
    n_cells = df["cell_id"].nunique()
    expected = None
    if spec:
        from .grid import GridSpec

        expected = [c.cell_id for c in GridSpec.from_dict(spec).cells()]
        lines.append(
            f"Grid: {len(spec['scenarios'])} scenario(s) x {len(spec['agents'])} agent(s) x "
            f"{len(spec['seeds'])} seed(s); {spec['requests']:,} requests per cell in batches "
            f"of {spec['batch']}, metrics window {spec['window']:,} requests.")
    missing = sorted(set(expected or []) - set(df["cell_id"]) - {f["cell_id"] for f in failures})
    lines.append(f"Cells with results: {n_cells}; failed: {len(failures)}; not run yet: "
                 f"{len(missing)}.")
    lines += ["", "Intervals are 95% t-intervals over seeds (none with a single seed); latencies "
              "are geometric means with the interval taken on the log scale. Per seed, a cell's "
              "value is the request-weighted mean over its windows.", ""]

    # summary
    lines += ["## Summary", ""]
    for scenario in scenarios:
        sc = cells[cells["scenario"] == scenario]
        rows = []
        for label in _order(sc["label"], labels):
            lc = sc[sc["label"] == label]
            row = [label]
            for col in METRICS:
                stat = log_mean_ci if col in LOG_SCALE else mean_ci
                row.append(fmt_ci(*stat(lc[col])[:3], digits=3))
            row.append(str(len(lc)))
            rows.append(row)
        lines += [f"### {scenario}", "",
                  _md_table(["agent", *METRICS.values(), "seeds"], rows), ""]

    # plots
    lines += ["## Reward over time", ""]
    for scenario in scenarios if plots else []:
        name = f"reward_{slug(scenario)}.png"
        plot_scenario(df, scenario, labels, out / name)
        lines += [f"![{scenario}]({name})", ""]

    # recovery
    lines += ["## Recovery after abrupt shifts", "",
              "Measured from the shift tick; the window that contains the shift counts on neither "
              f"side. Baseline: the request-weighted regret per request of the last "
              f"{PRE_SHIFT_WINDOWS} windows that end before the shift. An agent *drops* if the "
              f"first window wholly after the shift is more than {RECOVERY_TOLERANCE:.0%} "
              "(relative) above its baseline; it has *recovered* at the end of the first later "
              "window back within that tolerance, before the next shift or the end of the run "
              "(window resolution; mean [95% interval] over the seeds that recovered).", ""]
    rec = recovery_table(df, labels)
    if rec:
        lines += [_md_table(["scenario", "shift at", "agent", "regret before", "regret after",
                             "requests to recover", "seeds dropped", "dropped seeds recovered"],
                            rec), ""]
    else:
        lines += ["No abrupt shift fired after the first window in these runs.", ""]

    # headroom
    lines += ["## Adaptation headroom", "",
              f"`{HEADROOM_HIGH}` minus `{HEADROOM_LOW}` (true expected reward per request, "
              "paired by seed): what a ranker that knows the world but never updates loses, "
              "over the whole run and over the windows wholly after the first drift event. "
              f"Gains are each agent minus `{BASELINE}` on the same windows.", ""]
    head, gains, lacking = headroom_tables(df, labels, scenarios)
    if head:
        lines += [_md_table(["scenario", "first drift event at", "headroom (whole run)",
                             "headroom after first event", "seeds"], head), ""]
    if gains:
        lines += [_md_table(["scenario", "agent", f"gain over {BASELINE}", "share of headroom",
                             "seeds"], gains), ""]
    elif head:
        lines += [f"(gains need `{BASELINE}` and another agent in the grid)", ""]
    if lacking:
        lines += [f"Headroom needs `{HEADROOM_HIGH}` and `{HEADROOM_LOW}` in the grid "
                  f"(missing for: {', '.join(lacking)}).", ""]
    for scenario in scenarios:
        per = headroom_by_window(df[df["scenario"] == scenario], labels)
        if per is None:
            continue
        rows = [[str(r.window), f"{int(r.tick_start):,}", f"{int(r.tick_end):,}",
                 fmt_ci(r.headroom, r.lo, r.hi, 4)] for r in per.itertuples()]
        lines += [f"<details><summary>{scenario}: headroom per window</summary>", "",
                  _md_table(["window", "tick start", "tick end", "headroom"], rows), "",
                  "</details>", ""]

    # paired differences
    agent_of = dict(zip(df["label"], df["agent"], strict=True))
    baseline = next((lab for lab in labels if agent_of.get(lab) == BASELINE), labels[0])
    lines += [f"## Paired differences vs `{baseline}`", ""]
    if agent_of.get(baseline) != BASELINE:
        lines += [f"`{BASELINE}` is not in this grid, so agents are paired against the first "
                  f"agent, `{baseline}`.", ""]
    lines += ["Per seed and scenario, agent minus baseline (same users, candidates and drift); "
              "mean [95% interval] over seeds.", ""]
    rows = paired_differences(cells, labels, scenarios, baseline)
    if rows:
        lines += [_md_table(["scenario", "agent", "Δ reward/req", "Δ CTR", "Δ regret/req",
                             "paired seeds"], rows), ""]
    else:
        lines += ["(only one agent: nothing to pair)", ""]

    # failures
    if failures or missing:
        lines += ["## Failed and missing cells", ""]
        if failures:
            rows = [[f["cell_id"], short.get(f.get("label", ""), f.get("label", "")),
                     str(f.get("attempts", "")),
                     f.get("error", "").replace("|", "\\|")] for f in failures]
            lines += [_md_table(["cell", "agent", "attempts", "error"], rows), "",
                      f"Tracebacks: `{store.FAILED}/<cell>.json`.", ""]
        if missing:
            lines += [f"Not run yet ({len(missing)}): " + ", ".join(f"`{m}`" for m in missing),
                      "", "Re-run the same `driftrank grid` command to finish them.", ""]

    configured = [lab for lab in _labels_of(spec) if short.get(lab, lab) != lab]
    if configured:
        lines += ["## Agent configs", ""]
        lines += [f"- `{short[lab]}`: `{lab}`" for lab in configured] + [""]

    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
