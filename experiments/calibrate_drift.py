"""Drift fitted to a log: how users' tastes move between the log's time slices.

The log is cut into ``n_slices`` slices of equal numbers of requests. A user's taste in a slice
is the fold-in of that slice's positives onto the fixed item factors of the whole-log SVD (the
slice's empirical item distribution, scaled to the user's overall volume), in the world's
whitened units where the population's taste has E|u|^2 = 1.

Time: one request (a user's interactions at one timestamp) is one world tick, and the log's
clock maps linearly onto ticks (its time span becomes its number of requests), so an abrupt
event's tick is its slice's start time on that scale. An interaction log records only requests
that had an interaction, so its ticks are fewer than the requests that were served.

Changes are divided by the slice tastes' own signal power (their spread less the noise), the
quantity the world's units set to E|u|^2 = 1, so the fit does not depend on how much a fold-in
shrinks tastes.

A slice estimate is noisy (a few interactions each), so the raw squared change between two
slices overstates drift. The noise is measured, not assumed: each user's slice is split in two
random halves, whose squared difference measures the noise variance of the full slice's
estimate. The corrected change between consecutive slices is the raw change minus both
slices' noise.
(With halves of n_a and n_b positives, var(a - b) = sigma^2 (n / n_a + n / n_b).)

World drift is an Ornstein-Uhlenbeck walk with E|u(t+D) - u(t)|^2 = 2 (1 - exp(-D / tau)) for
E|u|^2 = 1. A slice sees a user's taste *averaged* over its window, which hides part of the
change, so the typical corrected change g over slices of D ticks is matched to the change of
window averages of that walk (``_window_change``), and solved for tau.
An abrupt event redraws a share s of users (their expected change is 2, the others' g), so a
boundary with change m implies s = (m - g) / (2 - g). A boundary becomes a scheduled abrupt
event (at the tick where its slice starts) when its change is a local peak, exceeds
``jump_factor`` times the typical one by more than three standard errors, and implies a share of
at least ``min_share``; the peak rule keeps the slow re-exposure after a shift from counting
as further shifts. Gradual drift that is not two standard errors above zero is reported as
none (``tau`` infinite): a small log cannot tell slow drift from none.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import scipy.sparse as sp

MIN_USERS = 5  # users seen in both slices for a boundary to count
NO_DRIFT = 0.02  # corrected change below this is indistinguishable from none
Z_JUMP = 3.0  # an abrupt boundary's excess change must be this many standard errors
Z_DRIFT = 2.0  # gradual drift must be this many standard errors above none
MEDIAN_SE = math.sqrt(math.pi / 2)  # standard error of a median / that of a mean


def _fold(fit, users, items, n_users) -> tuple[np.ndarray, np.ndarray]:
    """Whitened fold-in tastes (n_users, k) of these positives, and each user's count."""
    counts = np.bincount(users, minlength=n_users).astype(np.float64)
    p = sp.csr_matrix((np.ones(users.size), (users, items)), shape=(n_users, fit.n_items))
    scale = np.sqrt(fit.du) / np.maximum(counts, 1.0)
    x = sp.diags(scale) @ p @ sp.diags(1 / np.sqrt(fit.di))
    return np.asarray(x @ fit.fold) @ fit.whiten, counts


def _window_change(x: float) -> float:
    """E|a - b|^2 / E|a|^2 for the averages a, b of a unit OU process over two adjacent windows
    of length x timescales: 2 (1 - C / V) with V = 2/x (1 - (1 - e^-x) / x) the variance of
    one window's average and C = ((1 - e^-x) / x)^2 the covariance of adjacent ones."""
    q = -math.expm1(-x) / x
    return 2.0 * (1.0 - q * q / (2.0 / x * (1.0 - q)))


def _slices_per_timescale(change: float) -> float:
    """The slice length in timescales, x = D / tau, whose window-averaged change is ``change``
    (monotone in x, from 0 at x -> 0 to 2 as x grows)."""
    low, high = 1e-6, 50.0
    if change >= _window_change(high):
        return high
    return float(scipy.optimize.brentq(lambda x: _window_change(x) - change, low, high))


def _signal_power(tastes: np.ndarray, noise: np.ndarray) -> float:
    """Mean squared spread of the users' slice tastes around their mean, less the noise: the
    E|u|^2 that world units give 1. Changes are measured relative to it, which makes them
    independent of how much a slice fold-in shrinks tastes."""
    centred = tastes - tastes.mean(axis=0)
    return float(np.mean((centred ** 2).sum(axis=1) - noise))


def fit_drift(fit, n_slices: int = 8, jump_factor: float = 3.0, min_share: float = 0.1,
              min_count: int = 4, rng: np.random.Generator | None = None) -> dict:
    """Drift settings (``user_drift_timescale``, ``abrupt_times``, ``abrupt_user_share``) and
    the per-boundary diagnostics, as a JSON-ready dict (``None`` stands for infinity)."""
    rng = rng or np.random.default_rng(0)
    n_req = fit.n_requests
    n_slices = max(2, min(n_slices, n_req // 2))
    edges = np.linspace(0, n_req, n_slices + 1).round().astype(np.int64)
    pos = fit.positive
    req, users, items = fit.request[pos], fit.users[pos], fit.items[pos]
    slice_of = np.searchsorted(edges, req, side="right") - 1
    half = rng.random(req.size) < 0.5
    tastes, noise, valid = [], [], []
    for s in range(n_slices):
        inside = slice_of == s
        u_s, counts = _fold(fit, users[inside], items[inside], fit.n_users)
        a, na = _fold(fit, users[inside & half], items[inside & half], fit.n_users)
        b, nb = _fold(fit, users[inside & ~half], items[inside & ~half], fit.n_users)
        tastes.append(u_s)
        # var(a - b) = sigma^2 * (n / n_a + n / n_b) for a full-slice noise variance sigma^2
        factor = counts / np.maximum(na, 1) + counts / np.maximum(nb, 1)
        noise.append(((a - b) ** 2).sum(axis=1) / np.maximum(factor, 1e-12))
        valid.append((counts >= min_count) & (na > 0) & (nb > 0))
    change, users_seen, stderr = [], [], []
    for s in range(n_slices - 1):
        both = valid[s] & valid[s + 1]
        users_seen.append(int(both.sum()))
        if both.sum() < MIN_USERS:
            change.append(math.nan)
            stderr.append(math.nan)
            continue
        raw = ((tastes[s + 1][both] - tastes[s][both]) ** 2).sum(axis=1)
        corrected = raw - noise[s][both] - noise[s + 1][both]
        power = float(np.mean([_signal_power(tastes[x][both], noise[x][both]) for x in (s, s + 1)]))
        if power <= 0:
            change.append(math.nan)
            stderr.append(math.nan)
            continue
        change.append(float(np.mean(corrected)) / power)
        stderr.append(float(np.std(corrected) / math.sqrt(corrected.size)) / power)
    m, se = np.array(change), np.array(stderr)
    seen = np.isfinite(m)
    if not seen.any():
        return {"user_drift_timescale": None, "abrupt_times": [], "abrupt_user_share": 0.0,
                "slice_edges": edges.tolist(), "boundary_change": change,
                "boundary_users": users_seen, "typical_change": None,
                "note": f"too few users active in consecutive slices (need {MIN_USERS} with "
                        f">= {min_count} positives in each); no drift fitted"}
    g0 = max(float(np.median(m[seen])), 0.0)
    share = (m - g0) / max(2.0 - g0, 1e-6)
    padded = np.concatenate([[-np.inf], np.where(seen, m, -np.inf), [-np.inf]])
    peak = (padded[1:-1] >= padded[:-2]) & (padded[1:-1] >= padded[2:])
    abrupt = (seen & peak & (m > jump_factor * max(g0, NO_DRIFT)) & (share >= min_share)
              & (m - g0 > Z_JUMP * se))
    rest = seen & ~abrupt
    g = max(float(np.median(m[rest])), 0.0) if rest.any() else g0
    # g is a median: its standard error is sqrt(pi/2) times the mean's (normal changes)
    g_se = (float(MEDIAN_SE * np.median(se[rest]) / math.sqrt(rest.sum())) if rest.any()
            else math.inf)
    ticks_per_slice = n_req / n_slices
    if g <= max(NO_DRIFT, Z_DRIFT * g_se):
        tau = None
    else:
        tau = ticks_per_slice / _slices_per_timescale(g)
    abrupt_share = (m[abrupt] - g) / max(2.0 - g, 1e-6)
    # the log's clock -> world ticks: the log's time span is its number of requests
    req_time = np.full(n_req, np.inf)
    np.minimum.at(req_time, fit.request, fit.frame["time"].to_numpy())
    t0, t1 = req_time[0], req_time[-1]
    onsets = [float(req_time[edges[s + 1]]) for s in np.flatnonzero(abrupt)]
    if t1 > t0:
        ticks = [int(round((t - t0) / (t1 - t0) * n_req)) for t in onsets]
    else:
        ticks = [int(edges[s + 1]) for s in np.flatnonzero(abrupt)]
    return {
        "user_drift_timescale": tau,
        "abrupt_times": ticks,
        "abrupt_log_times": onsets,
        "abrupt_user_share": float(np.clip(abrupt_share.mean(), 0, 1)) if abrupt.any() else 0.0,
        "slice_edges": edges.tolist(),
        "ticks_per_slice": ticks_per_slice,
        "boundary_change": [None if math.isnan(c) else c for c in change],
        "boundary_users": users_seen,
        "boundary_stderr": [None if math.isnan(c) else c for c in stderr],
        "typical_change": g,
        "jump_factor": jump_factor,
    }
