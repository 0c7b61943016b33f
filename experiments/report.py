"""``driftrank report RUN_DIR``: Markdown + PNG summary of a grid run.

Writes ``report.md`` and one ``reward_<scenario>.png`` per scenario into the run folder (or
``out_dir``):

- **Summary**: per scenario x agent, the mean over seeds and a 95% t-interval of reward,
  CTR and regret per request, and of act() latency p50/p99 (ms per call). Per seed a cell's
  value is the request-weighted mean over its windows (for latency: of the per-window
  percentiles).
- **Reward over time**: reward per request per window (mean over seeds, band = 95% interval),
  regret below it; drift events are vertical lines (abrupt shifts and recall shifts drawn and
  labelled; catalog churn marked as ticks along the bottom, there are too many to draw).
- **Recovery after each abrupt shift**: requests from the shift until the agent's regret per
  request is back within 5% of its pre-shift level (the mean of the last up to 3 windows that
  end before the shift), at window resolution; "not recovered" if that does not happen before
  the next shift or the end of the run.
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

BASELINE = "static"
RECOVERY_TOLERANCE = 0.05
PRE_SHIFT_WINDOWS = 3

# two-sided 95% quantiles of Student's t, df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

METRICS = {  # column -> heading
    "reward_per_request": "reward/req",
    "ctr": "CTR",
    "regret_per_request": "regret/req",
    "act_p50_ms": "act p50 ms",
    "act_p99_ms": "act p99 ms",
}


def t975(df: int) -> float:
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.96 + 2.37 / df  # Cornish-Fisher style tail correction; exact to 3 digits here


def mean_ci(values) -> tuple[float, float, float, int]:
    """Mean and 95% t-interval (lo, hi); the interval is NaN for fewer than 2 values."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan, n
    half = t975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n


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
def recovery(windows: pd.DataFrame, shift: int, next_shift: float = math.inf) -> float | None:
    """Requests from ``shift`` until regret is back within 5% of the pre-shift level.

    ``windows``: one cell's rows sorted by window. Returns ``None`` if the agent does not
    recover before ``next_shift`` or the end of the run, NaN if there is no pre-shift window.
    """
    pre = windows[windows["tick_end"] <= shift].tail(PRE_SHIFT_WINDOWS)
    if pre.empty:
        return math.nan
    base = float(np.average(pre["regret_per_request"], weights=pre["requests"]))
    threshold = base + max(RECOVERY_TOLERANCE * abs(base), 1e-9)
    post = windows[(windows["tick_end"] > shift) & (windows["tick_start"] < next_shift)]
    hit = post[post["regret_per_request"] <= threshold]
    if hit.empty:
        return None
    return float(hit["tick_end"].iloc[0] - shift)


def recovery_table(df: pd.DataFrame, labels: list[str]) -> list[list[str]]:
    rows = []
    for scenario, sdf in df.groupby("scenario", sort=False):
        shifts = [t for kind, t in _events(sdf) if kind == "abrupt"]
        for i, shift in enumerate(shifts):
            nxt = shifts[i + 1] if i + 1 < len(shifts) else math.inf
            for label in _order(sdf["label"], labels):
                values = []
                for _, cell in sdf[sdf["label"] == label].groupby("seed"):
                    values.append(recovery(cell.sort_values("window"), shift, nxt))
                if all(v is not None and math.isnan(v) for v in values):
                    continue  # shift before the first complete window: nothing to compare to
                got = [v for v in values if v is not None and not math.isnan(v)]
                if not got:
                    text = "not recovered"
                else:
                    m, lo, hi, _ = mean_ci(got)
                    text = fmt_ci(m, lo, hi, 0)
                rows.append([scenario, f"{shift:,}", label, text, f"{len(got)}/{len(values)}"])
    return rows


# ---------------------------------------------------------------------------------- plots
def plot_scenario(df: pd.DataFrame, scenario: str, labels: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sdf = df[df["scenario"] == scenario]
    fig, (ax_r, ax_g) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 2]})
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
            for ax in (ax_r, ax_g):
                ax.plot([tick], [0], marker="|", color="0.5", ms=8, clip_on=False,
                        transform=ax.get_xaxis_transform(),
                        label="churn" if ax is ax_r and "churn" not in marked else None)
            marked.add("churn")
            continue
        style = {"abrupt": ("tab:red", "--"), "recall_shift": ("tab:purple", ":")}.get(
            kind, ("0.3", "-."))
        for ax in (ax_r, ax_g):
            ax.axvline(tick, color=style[0], ls=style[1], lw=1.2,
                       label=f"{kind} shift" if ax is ax_r and kind not in marked else None)
        marked.add(kind)
    ax_r.set_ylabel("reward per request")
    ax_g.set_ylabel("regret per request")
    ax_g.set_xlabel("requests served (simulated ticks)")
    ax_r.set_title(f"{scenario}: reward over time (mean over seeds, band = 95% interval)")
    ax_r.legend(fontsize=8, loc="best")
    ax_r.grid(alpha=0.3)
    ax_g.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- report
def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and the plots for ``run_dir``; return the report's path."""
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
    lines += ["", "Intervals are 95% t-intervals over seeds (none with a single seed).", ""]

    # summary
    lines += ["## Summary", ""]
    for scenario in scenarios:
        sc = cells[cells["scenario"] == scenario]
        rows = []
        for label in _order(sc["label"], labels):
            lc = sc[sc["label"] == label]
            row = [label]
            for col in METRICS:
                row.append(fmt_ci(*mean_ci(lc[col])[:3], digits=3))
            row.append(str(len(lc)))
            rows.append(row)
        lines += [f"### {scenario}", "",
                  _md_table(["agent", *METRICS.values(), "seeds"], rows), ""]

    # plots
    lines += ["## Reward over time", ""]
    for scenario in scenarios:
        name = f"reward_{slug(scenario)}.png"
        plot_scenario(df, scenario, labels, out / name)
        lines += [f"![{scenario}]({name})", ""]

    # recovery
    lines += ["## Recovery after abrupt shifts", "",
              f"Requests from the shift until regret per request is back within "
              f"{RECOVERY_TOLERANCE:.0%} of its level in the last {PRE_SHIFT_WINDOWS} windows "
              "before the shift (window resolution; mean [95% interval] over the seeds that "
              "recovered).", ""]
    rec = recovery_table(df, labels)
    if rec:
        lines += [_md_table(["scenario", "shift at", "agent", "requests to recover",
                             "seeds recovered"], rec), ""]
    else:
        lines += ["No abrupt shift fired after the first window in these runs.", ""]

    # paired differences
    agent_of = dict(zip(df["label"], df["agent"], strict=True))
    baseline = next((lab for lab in labels if agent_of.get(lab) == BASELINE), labels[0])
    lines += [f"## Paired differences vs `{baseline}`", ""]
    if agent_of.get(baseline) != BASELINE:
        lines += [f"`{BASELINE}` is not in this grid, so agents are paired against the first "
                  f"agent, `{baseline}`.", ""]
    lines += ["Per seed and scenario, agent minus baseline (same users, candidates and drift); "
              "mean [95% interval] over seeds.", ""]
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
            for col in ("reward_per_request", "ctr", "regret_per_request"):
                diff = other.loc[seeds, col] - base.loc[seeds, col]
                row.append(fmt_ci(*mean_ci(diff)[:3], digits=4))
            row.append(str(len(seeds)))
            rows.append(row)
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
