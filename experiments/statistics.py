"""The statistics every report and the study rest on, each checked on hand-computed rows.

- :func:`mean_ci`: mean and two-sided 95% Student-t interval over seeds (the unit of
  replication: cells on one seed share their requests, so seeds, not windows, are independent).
- :func:`log_mean_ci`: the same on the log scale for positive, skewed quantities (latency), so
  the interval never goes below zero.
- :func:`paired`: differences matched by seed, never by position, which is what lets common
  random numbers cancel.
- :func:`recovery`: how one cell responds to one abrupt shift, measured from the shift *tick*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

RECOVERY_TOLERANCE = 0.05
PRE_SHIFT_WINDOWS = 3

# two-sided 95% quantiles of Student's t, df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

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


def log_mean_ci(values) -> tuple[float, float, float, int]:
    """Geometric mean and 95% interval of a positive quantity (latency), from a t-interval on
    the log scale: the bounds stay positive and the skew of timing data is respected."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    m, lo, hi, n = mean_ci(np.log(x))
    return math.exp(m) if n else math.nan, math.exp(lo), math.exp(hi), n


#: columns summarised on the log scale (positive and skewed)
def paired(a: pd.Series, b: pd.Series) -> pd.Series:
    """``a - b`` on the keys (seeds) both hold: paired, never matched by position."""
    keys = a.index.intersection(b.index)
    return a.loc[keys] - b.loc[keys]



@dataclass(frozen=True)
class Recovery:
    """One cell's response to one abrupt shift.

    ``status`` is ``"no baseline"`` (no complete window before the shift), ``"no drop"`` (the
    first window wholly after the shift is already within the tolerance: nothing to recover
    from), ``"recovered"`` (``requests`` from the shift tick to the end of the first window
    back within it) or ``"not recovered"`` (not before the next shift or the end of the run).
    """

    status: str
    baseline: float = math.nan  # request-weighted regret/request of the baseline windows
    after: float = math.nan  # regret/request of the first window wholly after the shift
    requests: float = math.nan  # requests from the shift tick to the recovery window's end


def recovery(windows: pd.DataFrame, shift: int, next_shift: float = math.inf) -> Recovery:
    """How one cell (its rows sorted by window) responds to the abrupt shift at ``shift``.

    Measured from the shift *tick*: the window that contains the shift is mostly one side or
    the other, so it belongs to neither. The baseline is the last
    :data:`PRE_SHIFT_WINDOWS` windows that end at or before the shift (the level the agent had
    just before it, not its level since the start); a window is back when its regret per request
    is within :data:`RECOVERY_TOLERANCE` of the baseline, relative (a 5% rise means the same
    thing whatever the agent's regret level is).
    """
    pre = windows[windows["tick_end"] <= shift].tail(PRE_SHIFT_WINDOWS)
    if pre.empty:
        return Recovery("no baseline")
    base = float(np.average(pre["regret_per_request"], weights=pre["requests"]))
    threshold = base + max(RECOVERY_TOLERANCE * abs(base), 1e-9)
    post = windows[(windows["tick_start"] >= shift) & (windows["tick_start"] < next_shift)]
    if post.empty:
        return Recovery("no baseline", base)  # nothing wholly after the shift to compare
    after = float(post["regret_per_request"].iloc[0])
    if after <= threshold:
        return Recovery("no drop", base, after)
    hit = post[post["regret_per_request"] <= threshold]
    if hit.empty:
        return Recovery("not recovered", base, after)
    return Recovery("recovered", base, after, float(hit["tick_end"].iloc[0] - shift))


