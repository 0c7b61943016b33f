"""The items: hidden latent vectors and quality, fixed observed features, lagged statistics.

What an agent sees of an item never changes while the item lives (topic one-hot and a noisy
projection of its latent vector), plus three statistics. Impressions and CTR come from a
*batch job* that publishes the live counters every ``stats_refresh`` ticks (0 = live), so they
lag behind what is happening; freshness (age) is known at once. Churned-in items take over the
slots of the oldest items with unseen ids, fresh counters and no statistics.

Hidden quality = a fixed base + loading . (global OU factors of
:class:`~driftrank.envs.drift.GlobalDrift`) + the jumps of quality shocks. The features stay as
they were, so only clicks can reveal it. ``quality0`` is the quality every slot had at the
episode start (0 = the prior mean, for items born later): what the stale oracle ranks by.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels
from .config import WorldConfig
from .drift import QUALITY_FACTORS

FEATURE_BOUND = 10.0
CTR_PRIOR = 5.0 * 1.0 / 20.0  # the published smoothed CTR of an item with no impressions


class Catalog:
    def __init__(self, c: WorldConfig, g: np.random.Generator, projection: np.ndarray,
                 topic_centres: np.ndarray):
        m, d, t = c.n_items, c.latent_dim, c.n_topics
        self.config = c
        self.projection = projection
        self.topic_centres = topic_centres
        self.topic = np.empty(m, np.int64)
        self.v = np.empty((m, d), np.float32)
        self.quality = np.empty(m, np.float32)
        self.loading = np.zeros((m, QUALITY_FACTORS), np.float32)
        self.static = np.zeros((m, t + c.obs_dim), np.float32)
        self.ids = np.arange(m, dtype=np.int64)
        self.born = np.zeros(m, np.int64)
        self.impressions = np.zeros(m, np.float64)
        self.clicks = np.zeros(m, np.float64)
        self.pub_log_imp = np.zeros(m, np.float32)
        self.pub_ctr = np.full(m, CTR_PRIOR, np.float32)
        self.make(np.arange(m), g)
        self.next_id = m
        self.quality0 = self.quality.copy()

    def make(self, slots: np.ndarray, g: np.random.Generator) -> None:
        """(Re)create the items in ``slots``; draws a fixed amount per item from ``g``."""
        c = self.config
        n, d = slots.size, c.latent_dim
        topic = g.integers(c.n_topics, size=n)
        v = 0.8 * self.topic_centres[topic] + 0.6 * g.standard_normal((n, d)) / math.sqrt(d)
        noise = g.standard_normal((n, c.obs_dim)) * c.feature_noise
        self.topic[slots] = topic
        self.v[slots] = v
        self.quality[slots] = g.standard_normal(n) * c.quality_std
        load = g.standard_normal((n, QUALITY_FACTORS)) * (
            c.quality_drift_scale / math.sqrt(QUALITY_FACTORS))
        self.loading[slots] = load
        static = np.zeros((n, c.n_topics + c.obs_dim), np.float32)
        static[np.arange(n), topic] = 1.0
        static[:, c.n_topics:] = np.clip(
            v.astype(np.float32) @ self.projection.T + noise, -FEATURE_BOUND, FEATURE_BOUND)
        self.static[slots] = static

    def churn(self, slots: np.ndarray, g: np.random.Generator, tick: int) -> None:
        """Replace ``slots`` by cold items: new ids, fresh counters, no statistics."""
        n = slots.size
        self.make(slots, g)
        self.ids[slots] = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        self.born[slots] = tick
        self.impressions[slots] = 0
        self.clicks[slots] = 0
        self.pub_log_imp[slots] = 0
        self.pub_ctr[slots] = CTR_PRIOR
        self.quality0[slots] = 0.0

    def oldest(self, n: int) -> np.ndarray:
        return np.lexsort((np.arange(self.born.size), self.born))[:n]

    def quality_now(self, slots: np.ndarray, factors: np.ndarray) -> np.ndarray:
        """Hidden quality of ``slots`` (any shape) with the drift factors applied."""
        q = self.quality[slots]
        if self.config.quality_drift_scale > 0:
            q = q + self.loading[slots] @ factors
        return q

    def frozen_quality(self, factors0: np.ndarray) -> None:
        """Set ``quality0`` to the current quality of every item (called once at the start)."""
        self.quality0 = self.quality + (self.loading @ factors0 if
                                        self.config.quality_drift_scale > 0 else 0.0)
        self.quality0 = self.quality0.astype(np.float32)

    def shock(self, g: np.random.Generator) -> None:
        c = self.config
        m = c.n_items
        hit = g.random(m) < c.quality_shock_share
        jump = g.standard_normal(m).astype(np.float32) * np.float32(c.quality_shock_scale)
        self.quality += np.where(hit, jump, np.float32(0))

    # ------------------------------------------------------------------ statistics
    def record(self, shown_slots: np.ndarray, clicked_slots: np.ndarray) -> None:
        np.add.at(self.impressions, shown_slots, 1.0)
        np.add.at(self.clicks, clicked_slots, 1.0)

    def publish(self) -> None:
        """The batch job: copy the live counters into the statistics agents see."""
        self.pub_log_imp = (np.log1p(self.impressions) / 10.0).astype(np.float32)
        self.pub_ctr = (5.0 * (self.clicks + 1.0) / (self.impressions + 20.0)).astype(np.float32)

    def maybe_publish(self, tick_before: int, tick_after: int) -> None:
        r = self.config.stats_refresh
        if r > 0 and tick_after // r > tick_before // r:
            self.publish()

    def features(self, slots: np.ndarray, tick: int) -> np.ndarray:
        """(B, N, Fi) observed features of the candidate ``slots`` (B, N)."""
        c = self.config
        s = self.static.shape[1]
        out = np.empty((*slots.shape, c.item_feature_dim), np.float32)
        age = np.empty(slots.shape, np.float64)
        live = c.stats_refresh == 0
        kernels.item_features(slots, self.static, self.pub_log_imp, self.pub_ctr, self.born,
                              tick, float(c.freshness_scale), not live, out, age)
        if live:
            imp = self.impressions[slots]
            out[..., s] = np.log1p(imp) / 10.0
            out[..., s + 1] = 5.0 * (self.clicks[slots] + 1.0) / (imp + 20.0)
        out[..., s + 2] = np.exp(age, out=age)
        return out
