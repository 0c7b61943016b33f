"""How a calibrated world compares with its log: item popularity and user activity, side by side.

The fitted world is served by the popularity ranker the level was tuned with, for as many
requests as the log has (capped), and its per-item clicks and per-user requests are set against
the log's: rank-frequency curves (the shape of the long tail) and Spearman correlations (whether
the same items and users lead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ..envs.calibration import load_calibration
from ..envs.config import WorldConfig
from .calibrate_sim import popularity_run


def compare_with_log(path: str | Path, world: dict | None = None, requests: int | None = None,
                     seed: int = 0) -> dict:
    """Simulate the calibrated world at ``path`` under the popularity ranker; return the log's
    and the simulation's per-item clicks and per-user requests with their Spearman
    correlations and CTRs."""
    cal = load_calibration(path)
    log_clicks = cal.extras.get("log_item_clicks")
    log_requests = cal.extras.get("log_user_requests")
    if log_clicks is None or log_requests is None:
        raise ValueError(f"{path}: no log_item_clicks / log_user_requests arrays to compare with")
    n = int(requests or min(int(log_requests.sum()), 50_000))
    config = WorldConfig(calibration=str(path), **(world or {}))
    batch = min(256, n)
    run = popularity_run(config, log_clicks, n, batch, seed)
    return {
        "log_item_clicks": log_clicks, "sim_item_clicks": run.item_clicks,
        "log_user_requests": log_requests, "sim_user_requests": run.user_requests,
        "item_spearman": float(spearmanr(log_clicks, run.item_clicks)[0]),
        "user_spearman": float(spearmanr(log_requests, run.user_requests)[0]),
        "log_ctr": cal.metadata.get("log", {}).get("ctr"), "sim_ctr": run.ctr,
        "requests": n,
    }


def plot_comparison(cmp: dict, out: str | Path, title: str = "") -> Path:
    """Two panels: item clicks by popularity rank, user requests by activity rank (log vs
    calibrated world, each as a share of its total, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = (("item_clicks", "items by clicks", cmp["item_spearman"]),
              ("user_requests", "users by requests", cmp["user_spearman"]))
    for ax, (key, label, rho) in zip(axes, panels, strict=True):
        for source, style in (("log", "-"), ("sim", "--")):
            values = np.sort(np.asarray(cmp[f"{source}_{key}"], float))[::-1]
            share = values / max(values.sum(), 1e-12)
            ax.plot(np.arange(1, values.size + 1), np.maximum(share, 1e-7), style,
                    label="log" if source == "log" else "calibrated world")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"rank ({label})")
        ax.set_ylabel("share")
        ax.set_title(f"{label}: Spearman {rho:.2f} (same ids)")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
