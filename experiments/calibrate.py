"""Fit a world to an interaction log: ``calibrate(log) -> CalibratedWorld`` (and a ``.npz``).

The fitted world is read back by the numpy-only :mod:`driftrank.envs.calibration` through the
world setting ``calibration="world.npz"``. The fit, step by step (each step's *why*):

1. **Index** users and items (the log's ids, sorted) and number the requests: one request is one
   (user, timestamp) pair, in time order, and one request is one tick of the world, so the log's
   time becomes world time.
2. **Tastes** by a truncated SVD (``scipy.sparse.linalg.svds``) of the user x item matrix of
   positives (clicks, or every interaction), scaled by ``1/sqrt(user count * item count)`` so
   the leading factors describe taste rather than sheer popularity or activity.
3. **Strength**: a logistic regression (``scipy.optimize``) of clicks on the SVD affinity and
   the item's own popularity (its smoothed click-through rate in an impression log; its
   interaction count against sampled non-interactions otherwise) says how many logit units a
   unit of affinity and of popularity is worth.
4. **World units**: users are centred and whitened to the world's prior N(0, I/d), so the
   world's drift (Ornstein-Uhlenbeck walks toward that prior, redraws at abrupt shifts) keeps the
   population alike; item vectors take the inverse transform and the fitted strength, so
   ``affinity_scale * sqrt(d) * u.v`` is the fitted affinity logit. The population's mean taste
   becomes part of each item's quality.
5. **Topics**: the log's genres where it has them (MovieLens ``u.item``/``movies.csv``, or a
   topic column), else k-means clusters of the item vectors (``scipy.cluster.vq.kmeans2``).
   Topic popularity is the mean quality of its items; item quality is the rest.
6. **Activity**: each user's arrival rate is their share of the log's requests.
7. **Level**: in an impression log, the attraction level is shifted until a popularity ranker
   (ranking by the log's click counts) has the log's CTR in the fitted world; root-finding
   (``scipy.optimize.brentq``) on common random numbers, where CTR rises monotonically.
8. **Drift** (``fit_drift``): the log is cut into time slices; each user's taste per slice is
   the fold-in of that slice's interactions onto the fixed item factors. The squared change
   between consecutive slices, minus the sampling noise measured by split halves, sets the
   Ornstein-Uhlenbeck timescale of gradual drift; a slice boundary whose change towers over
   the typical one becomes a scheduled abrupt event with the share of users that switched.

The file is versioned and written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.sparse as sp
from scipy.cluster.vq import kmeans2
from scipy.sparse.linalg import svds
from scipy.special import expit, log_expit

from ..envs.calibration import FORMAT, REQUIRED, VERSION
from ..envs.config import WorldConfig
from .calibrate_drift import fit_drift
from .calibrate_log import LogColumns, read_log
from .calibrate_sim import popularity_run

PAIRS_MAX = 200_000  # logistic regression sample
CTR_PRIOR = 20.0  # impressions of prior (the log's mean CTR) when smoothing an item's CTR


@dataclass
class CalibratedWorld:
    """Fitted arrays (the ``.npz`` content), metadata, and the file written (if any)."""

    arrays: dict[str, np.ndarray]
    metadata: dict
    path: Path | None = None
    extras: dict = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, int]:
        m, d = self.arrays["item_vectors"].shape
        return {"n_items": m, "n_users": self.arrays["user_tastes"].shape[0], "latent_dim": d,
                "n_topics": self.arrays["topic_popularity"].shape[0]}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.npz`` atomically: a temporary file in the same folder, then a rename, so
        a reader never sees half a file."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"--out {str(path)!r} must end in .npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, metadata=np.array(json.dumps(self.metadata)),
                         **self.arrays, **self.extras)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.path = path
        return path


def calibrate(log, format: str = "csv", out: str | os.PathLike | None = None, *,
              columns: LogColumns | None = None, genres=None, latent_dim: int = 16,
              n_topics: int = 20, n_slices: int = 8, jump_factor: float = 3.0,
              target_ctr: float | None = None, world: dict | None = None,
              tune_requests: int = 8192, seed: int = 0) -> CalibratedWorld:
    """Fit a world to ``log`` (a path, or a DataFrame with ``format="csv"``).

    ``latent_dim`` and ``n_topics`` are upper bounds (small logs get fewer). ``world``: the
    world settings the CTR level is tuned under (``n_candidates``, ``slate_size``, ...: use the
    ones you will run). ``target_ctr`` sets the CTR of an interaction log, which has none of its
    own (default: leave the world's default level). Writes ``out`` if given.
    """
    for name, value, low in (("latent_dim", latent_dim, 1), ("n_topics", n_topics, 1),
                             ("n_slices", n_slices, 2), ("tune_requests", tune_requests, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    if target_ctr is not None and not 0 < target_ctr < 1:
        raise ValueError(f"target_ctr={target_ctr!r} must lie in (0, 1)")
    frame, info = read_log(log, format=format, columns=columns, genres=genres)
    rng = np.random.default_rng(seed)
    fit = _Fit(frame, info)
    fit.factorise(latent_dim, seed)
    fit.strength(rng)
    fit.world_units(WorldConfig().affinity_scale)
    fit.topics(n_topics, rng)
    world_settings = dict(world or {})
    ctr = target_ctr if target_ctr is not None else fit.log_ctr
    result = fit.result()
    result.metadata["drift"] = fit_drift(fit, n_slices=n_slices, jump_factor=jump_factor,
                                         rng=rng)
    if ctr is not None:
        offset, achieved = _tune_level(result, ctr, world_settings, tune_requests, seed)
        result.arrays["topic_popularity"] = (result.arrays["topic_popularity"]
                                             + offset).astype(np.float32)
        result.metadata["level"] = {"target_ctr": ctr, "simulated_ctr": achieved,
                                    "offset": offset, "tuned_under": world_settings,
                                    "requests": tune_requests}
    if out is not None:
        result.save(out)
    return result


class _Fit:
    """The state of one fit, step by step (see the module docstring)."""

    def __init__(self, frame: pd.DataFrame, info: dict):
        self.frame = frame
        self.info = info
        self.user_ids, self.users = np.unique(frame["user"].to_numpy(), return_inverse=True)
        self.item_ids, self.items = np.unique(frame["item"].to_numpy(), return_inverse=True)
        self.n_users, self.n_items = self.user_ids.size, self.item_ids.size
        if self.n_users < 2 or self.n_items < 2:
            raise ValueError(f"the log has {self.n_users} user(s) and {self.n_items} item(s); "
                             "calibration needs at least 2 of each")
        # one request = one (user, time) pair; frame is sorted by time, so ngroup in order of
        # first appearance numbers requests chronologically
        keys = pd.DataFrame({"u": self.users, "t": frame["time"].to_numpy()})
        self.request = keys.groupby(["u", "t"], sort=False).ngroup().to_numpy()
        self.n_requests = int(self.request.max()) + 1
        req_user = np.zeros(self.n_requests, np.int64)
        req_user[self.request] = self.users
        self.user_requests = np.bincount(req_user, minlength=self.n_users).astype(np.float64)
        self.impressions = "click" in frame
        self.positive = (frame["click"].to_numpy() == 1) if self.impressions else np.ones(
            len(frame), bool)
        if not self.positive.any():
            raise ValueError("the log has no clicks (every click is 0): nothing to fit tastes to")
        self.log_ctr = float(self.positive.mean()) if self.impressions else None
        self.item_positives = np.bincount(self.items[self.positive],
                                          minlength=self.n_items).astype(np.float64)
        self.item_shown = np.bincount(self.items, minlength=self.n_items).astype(np.float64)

    # ---------------------------------------------------------------- 2. tastes
    def factorise(self, latent_dim: int, seed: int) -> None:
        users, items = self.users[self.positive], self.items[self.positive]
        p = sp.csr_matrix((np.ones(users.size), (users, items)),
                          shape=(self.n_users, self.n_items))
        p.sum_duplicates()
        self.du = np.asarray(p.sum(axis=1)).ravel() + 1.0
        self.di = np.asarray(p.sum(axis=0)).ravel() + 1.0
        x = sp.diags(1 / np.sqrt(self.du)) @ p @ sp.diags(1 / np.sqrt(self.di))
        k = min(latent_dim, min(x.shape) - 1)
        v0 = np.random.default_rng(seed).standard_normal(min(x.shape))
        left, s, right_t = svds(x.astype(np.float64), k=k, v0=v0, solver="arpack")
        order = np.argsort(-s)
        s, left, right = s[order], left[:, order], right_t[order].T
        s = np.maximum(s, 1e-12)
        # sign convention: each factor's largest item loading is positive (a deterministic file)
        sign = np.sign(right[np.argmax(np.abs(right), axis=0), np.arange(k)])
        left, right = left * sign, right * sign
        self.k = k
        self.singular_values = s
        self.user_f = left * np.sqrt(s)
        self.item_f = right * np.sqrt(s)
        self.fold = right / np.sqrt(s)  # x_row @ fold = the row's user factors

    # ---------------------------------------------------------------- 3. strength
    def item_popularity(self) -> np.ndarray:
        """Raw per-item popularity regressor: logit of the smoothed CTR (impressions) or log of
        the interaction count (interactions)."""
        if self.impressions:
            prior = self.log_ctr
            ctr = (self.item_positives + CTR_PRIOR * prior) / (self.item_shown + CTR_PRIOR)
            return np.log(ctr) - np.log1p(-ctr)
        return np.log1p(self.item_positives)

    def strength(self, rng: np.random.Generator) -> None:
        self.h = self.item_popularity()
        if self.impressions:
            rows = np.arange(len(self.frame))
            if rows.size > PAIRS_MAX:
                rows = rng.choice(rows, PAIRS_MAX, replace=False)
            users, items, y = self.users[rows], self.items[rows], self.positive[rows]
        else:
            pos = np.flatnonzero(self.positive)
            if pos.size > PAIRS_MAX // 2:
                pos = rng.choice(pos, PAIRS_MAX // 2, replace=False)
            neg_u = rng.integers(self.n_users, size=pos.size)
            neg_i = rng.integers(self.n_items, size=pos.size)
            users = np.concatenate([self.users[pos], neg_u])
            items = np.concatenate([self.items[pos], neg_i])
            y = np.concatenate([np.ones(pos.size, bool), np.zeros(pos.size, bool)])
        affinity = np.einsum("ij,ij->i", self.user_f[users], self.item_f[items])
        a_scale = affinity.std() or 1.0
        h_scale = self.h.std() or 1.0
        x = np.stack([affinity / a_scale, self.h[items] / h_scale, np.ones(users.size)], axis=1)
        yf = y.astype(np.float64)

        def loss(w):
            z = x @ w
            nll = -(yf * log_expit(z) + (1 - yf) * log_expit(-z)).mean()
            grad = x.T @ (expit(z) - yf) / yf.size
            return nll, grad

        res = scipy.optimize.minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B")
        if not res.success and not np.isfinite(res.fun):
            raise ValueError(f"the strength fit failed: {res.message}")
        self.alpha = float(res.x[0] / a_scale)
        self.beta = float(res.x[1] / h_scale)
        self.strength_fit = {"affinity": self.alpha, "popularity": self.beta,
                             "intercept": float(res.x[2]), "pairs": int(users.size),
                             "log_loss": float(res.fun)}

    # ---------------------------------------------------------------- 4. world units
    def world_units(self, affinity_scale: float) -> None:
        k = self.k
        self.u_mean = self.user_f.mean(axis=0)
        centred = self.user_f - self.u_mean
        cov = np.atleast_2d(np.cov(centred, rowvar=False))
        lam, vec = np.linalg.eigh(cov)
        lam = np.maximum(lam, lam.max() * 1e-9 + 1e-18)
        self.whiten = vec @ np.diag(1 / np.sqrt(lam * k)) @ vec.T
        unwhiten = vec @ np.diag(np.sqrt(lam * k)) @ vec.T
        self.tastes = centred @ self.whiten
        k_aff = affinity_scale * math.sqrt(k)
        self.vectors = self.item_f @ unwhiten * (self.alpha / k_aff)
        self.quality = self.alpha * (self.item_f @ self.u_mean) + self.beta * self.h
        self.quality -= self.quality.mean()

    # ---------------------------------------------------------------- 5. topics
    def topics(self, n_topics: int, rng: np.random.Generator) -> None:
        if "topic" in self.frame:
            labels = self.frame["topic"].fillna("unknown").astype(str).to_numpy()
            first = pd.Series(labels).groupby(self.items).first()
            names, topic = np.unique(first.reindex(range(self.n_items)).fillna("unknown")
                                     .to_numpy(str), return_inverse=True)
            self.topic_names = [str(n) for n in names]
            self.topic_source = self.info.get("topics_from") or "the log"
        else:
            t = min(n_topics, self.n_items)
            data = self.vectors / (np.linalg.norm(self.vectors, axis=1, keepdims=True) + 1e-12)
            with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
                warnings.simplefilter("ignore")  # empty clusters are dropped just below
                _, label = kmeans2(data, t, minit="++", rng=rng)
            used, topic = np.unique(label, return_inverse=True)
            self.topic_names = [f"cluster {i}" for i in range(used.size)]
            self.topic_source = "k-means of item vectors"
        self.topic = topic.astype(np.int64)
        t = len(self.topic_names)
        counts = np.bincount(self.topic, minlength=t)
        self.topic_pop = np.bincount(self.topic, weights=self.quality, minlength=t) / counts
        self.item_quality = self.quality - self.topic_pop[self.topic]

    # ---------------------------------------------------------------- the file
    def result(self) -> CalibratedWorld:
        activity = self.user_requests / np.exp(np.mean(np.log(self.user_requests)))
        arrays = {
            "item_vectors": self.vectors.astype(np.float32),
            "item_topic": self.topic,
            "item_quality": self.item_quality.astype(np.float32),
            "topic_popularity": self.topic_pop.astype(np.float32),
            "user_tastes": self.tastes.astype(np.float32),
            "user_activity": activity,
        }
        assert set(arrays) == set(REQUIRED)
        extras = {
            "item_ids": self.item_ids.astype(np.int64),
            "user_ids": self.user_ids.astype(np.int64),
            "log_item_clicks": self.item_positives,
            "log_item_impressions": self.item_shown,
            "log_user_requests": self.user_requests,
        }
        t = self.frame["time"].to_numpy()
        metadata = {
            "format": FORMAT, "version": VERSION,
            "sizes": {"n_items": int(self.n_items), "n_users": int(self.n_users),
                      "latent_dim": int(self.k), "n_topics": len(self.topic_names)},
            "log": {**self.info, "requests": self.n_requests,
                    "positives": int(self.positive.sum()), "ctr": self.log_ctr,
                    "time_span": [float(t[0]), float(t[-1])]},
            "topics": {"source": self.topic_source, "names": self.topic_names},
            "factorisation": {"method": "scipy.sparse.linalg.svds", "rank": int(self.k),
                              "singular_values": [float(s) for s in self.singular_values]},
            "strength": self.strength_fit,
            "affinity_scale": WorldConfig().affinity_scale,
            "attraction_bias": WorldConfig().attraction_bias,
        }
        return CalibratedWorld(arrays=arrays, metadata=metadata, extras=extras)


def _tune_level(result: CalibratedWorld, target: float, world: dict, requests: int,
                seed: int) -> tuple[float, float]:
    """The attraction offset at which a popularity ranker's CTR is ``target``."""
    popularity = result.extras["log_item_clicks"]
    with tempfile.TemporaryDirectory(prefix="driftrank-calibrate-") as folder:
        path = result.save(Path(folder) / "tuning.npz")
        base = WorldConfig(calibration=str(path), **world)
        bias = base.attraction_bias
        batch = min(256, requests)

        seen: dict[float, float] = {}

        def ctr(offset: float) -> float:
            if offset not in seen:
                config = base.replace(attraction_bias=bias + offset)
                seen[offset] = popularity_run(config, popularity, requests, batch, seed).ctr
            return seen[offset]

        low, high = -12.0, 12.0
        if target <= ctr(low):
            offset = low
        elif target >= ctr(high):
            offset = high
        else:  # CTR rises monotonically with the offset (same dice for every offset)
            offset = scipy.optimize.brentq(lambda o: ctr(o) - target, low, high, xtol=0.01)
        achieved = ctr(offset)
    result.path = None
    return float(offset), float(achieved)
