"""Drift: the population-level processes and the labelled schedule of discrete events.

Per-user processes (each taste's Ornstein-Uhlenbeck walk, boredom, consumption pull) live with
the users in :mod:`driftrank.envs.population`, applied lazily when a user arrives. This module
holds what is shared by everyone:

- a topic **trend** and a population-wide **taste offset**, both OU processes (mean-reverting
  random walks, so they move but never blow up);
- a **periodic** daily cycle of topic trends with a random phase per topic;
- **topic popularity**, which an abrupt shift reshuffles;
- hidden **item quality drift**: r global OU factors; item j's quality moves by its fixed
  loading times the factors, so every item random-walks while the per-step cost stays O(r)
  whatever the catalog size (items read their drift when they are gathered);
- the **recall stage's** topic bias and relevance share, which a recall shift changes;
- the **event schedule**: abrupt shifts, quality shocks, recall shifts and catalog churn, at
  fixed ticks, each a labelled row (kind, onset, width, magnitude, share, mechanism) so a
  report can say which mechanism a drop came from.

All randomness after construction comes from the drift stream, in amounts that do not depend on
what agents do, so every agent on the same seed meets the same drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kernels
from .config import WorldConfig

QUALITY_FACTORS = 8  # rank of the hidden item-quality drift
SCHEDULE_COLUMNS = ("kind", "onset", "width", "magnitude", "share", "mechanism")
MAX_SCHEDULE_ROWS = 10_000  # periodic churn is listed event by event up to this many rows


@dataclass(frozen=True)
class DriftEvent:
    """A labelled drift event.

    ``kind``: ``abrupt`` (taste switch and/or topic reshuffle), ``quality_shock``,
    ``recall_shift``, ``churn``, or a continuous process (``gradual``, ``trend``,
    ``population``, ``periodic``, ``quality_drift``, ``consumption``) whose ``width`` is its
    timescale. ``magnitude`` is in the units of the mechanism (logit or taste std), ``share``
    the fraction of users or items hit, ``mechanism`` what a model would have to relearn.
    """

    tick: int
    kind: str
    width: float = 0.0
    magnitude: float = 0.0
    share: float = 1.0
    mechanism: str = ""

    def as_dict(self) -> dict:
        return {"tick": self.tick, "kind": self.kind, "width": self.width,
                "magnitude": self.magnitude, "share": self.share, "mechanism": self.mechanism}

    def as_row(self) -> dict:
        return {"kind": self.kind, "onset": self.tick, "width": self.width,
                "magnitude": self.magnitude, "share": self.share, "mechanism": self.mechanism}


def discrete_events(c: WorldConfig) -> list[DriftEvent]:
    """The scheduled (non-periodic) events of a config, in tick order."""
    abrupt_mech = " + ".join(
        m for m, on in (("user taste", c.abrupt_user_share > 0),
                        ("topic popularity", c.abrupt_topic_reshuffle)) if on) or "none"
    events = [DriftEvent(int(t), "abrupt", 0.0, 1.0 if c.abrupt_user_share > 0 else
                         c.topic_pop_scale, c.abrupt_user_share if c.abrupt_user_share > 0
                         else 1.0, abrupt_mech) for t in c.abrupt_times]
    events += [DriftEvent(int(t), "quality_shock", 0.0, c.quality_shock_scale,
                          c.quality_shock_share, "item quality (hidden)")
               for t in c.quality_shock_times]
    events += [DriftEvent(int(t), "recall_shift", 0.0, c.recall_shift_topic_bias, 1.0,
                          "candidate mix (recall)") for t in c.recall_shift_times]
    return sorted(events, key=lambda e: e.tick)


def churn_event(c: WorldConfig, tick: int) -> DriftEvent:
    return DriftEvent(int(tick), "churn", 0.0, 1.0, c.churn_fraction,
                      "catalog (cold items, unseen ids)")


def continuous_processes(c: WorldConfig) -> list[DriftEvent]:
    """Rows for the processes that move all the time (onset 0, width = timescale)."""
    rows = []
    if math.isfinite(c.user_drift_timescale):
        rows.append(DriftEvent(0, "gradual", c.user_drift_timescale, 1.0, 1.0, "user taste"))
    if c.trend_scale > 0:
        rows.append(DriftEvent(0, "trend", c.trend_timescale, c.trend_scale, 1.0,
                               "topic popularity"))
    if c.population_drift_scale > 0:
        rows.append(DriftEvent(0, "population", c.population_drift_timescale,
                               c.population_drift_scale, 1.0, "user taste (shared offset)"))
    if c.periodic_amplitude > 0:
        rows.append(DriftEvent(0, "periodic", float(c.period), c.periodic_amplitude, 1.0,
                               "topic popularity (daily cycle)"))
    if c.quality_drift_scale > 0:
        rows.append(DriftEvent(0, "quality_drift", c.quality_drift_timescale,
                               c.quality_drift_scale, 1.0, "item quality (hidden)"))
    if c.consumption_rate > 0 or c.boredom_gain > 0:
        rows.append(DriftEvent(0, "consumption", c.boredom_half_life,
                               max(c.consumption_rate, c.boredom_gain), 1.0,
                               "user taste and boredom (action-dependent)"))
    return rows


def schedule_rows(c: WorldConfig, horizon: int) -> list[DriftEvent]:
    """Every labelled drift row of ``c`` up to tick ``horizon`` (exclusive)."""
    rows = continuous_processes(c) + [e for e in discrete_events(c) if e.tick < horizon]
    if c.churn_interval > 0:
        n = min((horizon - 1) // c.churn_interval, MAX_SCHEDULE_ROWS) if horizon > 0 else 0
        rows += [churn_event(c, c.churn_interval * (i + 1)) for i in range(max(n, 0))]
    return sorted(rows, key=lambda e: (e.tick, e.kind))


def schedule_frame(c: WorldConfig, horizon: int):
    """The drift schedule as a pandas DataFrame (columns :data:`SCHEDULE_COLUMNS`)."""
    import pandas as pd  # only when a table is asked for: the world itself needs numpy only

    return pd.DataFrame([e.as_row() for e in schedule_rows(c, horizon)],
                        columns=list(SCHEDULE_COLUMNS))


def _ou_coefficients(dt: float, timescale: float, scale: float) -> tuple:
    """(keep, noise coefficient) as float32 of the exact OU update over ``dt`` with stationary
    std ``scale``: x <- keep * x + coefficient * z."""
    a = math.exp(-dt / timescale)
    return np.float32(a), np.float32(math.sqrt(max(0.0, 1.0 - a * a)) * scale)


class GlobalDrift:
    """Population-level drift state and the event schedule of one world."""

    def __init__(self, config: WorldConfig, world_rng: np.random.Generator):
        c = config
        self.config = c
        t = c.n_topics
        self.topic_pop = (world_rng.standard_normal(t) * c.topic_pop_scale).astype(np.float32)
        self.trend = (world_rng.standard_normal(t) * c.trend_scale).astype(np.float32)
        self.offset = (
            world_rng.standard_normal(c.latent_dim) * c.population_drift_scale / math.sqrt(
                c.latent_dim)
        ).astype(np.float32)
        self.phase = world_rng.uniform(0, 2 * math.pi, t).astype(np.float32)
        self.quality_factors = world_rng.standard_normal(QUALITY_FACTORS).astype(np.float32)
        self.recall_topic_bias = np.zeros(t, np.float32)
        self.n_relevance = c.n_relevance
        self._events = discrete_events(c)
        self._next = 0
        self._next_churn = c.churn_interval if c.churn_interval > 0 else None
        self._no_periodic = np.zeros(t, np.float32)
        # which OU processes move (trend, population offset, quality factors), and their
        # coefficients per step length (a world steps by the same B ticks every time)
        self._moving = np.array([c.trend_scale > 0, c.population_drift_scale > 0,
                                 c.quality_drift_scale > 0])
        self._ou: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.topic_term = self._topic_term(0)

    def _periodic_term(self, tick: int) -> np.ndarray:
        c = self.config
        if c.periodic_amplitude > 0:
            angle = 2 * math.pi * tick / c.period + self.phase
            return (c.periodic_amplitude * np.sin(angle)).astype(np.float32)
        return self._no_periodic

    def _topic_term(self, tick: int) -> np.ndarray:
        """Popularity + trend + the periodic term at ``tick`` (float32, added in that order)."""
        self._periodic = self._periodic_term(tick)
        return (self.topic_pop + self.trend + self._periodic).astype(np.float32)

    def _ou_coefficients(self, dt: int) -> tuple[np.ndarray, np.ndarray]:
        """(keeps, noise coefficients) (3,) float32 of the trend, the population offset and
        the quality factors over ``dt`` ticks."""
        cached = self._ou.get(dt)
        if cached is None:
            c = self.config
            keeps, coefs = zip(*(_ou_coefficients(dt, timescale, scale) for timescale, scale in (
                (c.trend_timescale, c.trend_scale),
                (c.population_drift_timescale,
                 c.population_drift_scale / math.sqrt(c.latent_dim)),
                (c.quality_drift_timescale, 1.0))), strict=True)
            cached = self._ou[dt] = (np.array(keeps, np.float32), np.array(coefs, np.float32))
        return cached

    def due_events(self, start: int, stop: int) -> list[DriftEvent]:
        """Events with ``start <= tick < stop``, in order; each is returned once."""
        fired: list[DriftEvent] = []
        while self._next < len(self._events) and self._events[self._next].tick < stop:
            if self._events[self._next].tick >= start:
                fired.append(self._events[self._next])
            self._next += 1
        while self._next_churn is not None and self._next_churn < stop:
            if self._next_churn >= start:
                fired.append(churn_event(self.config, self._next_churn))
            self._next_churn += self.config.churn_interval
        fired.sort(key=lambda e: e.tick)
        return fired

    def advance(self, tick: int, dt: int, rng: np.random.Generator) -> None:
        """Move the continuous processes forward ``dt`` ticks, to ``tick``."""
        c = self.config
        z = rng.standard_normal(c.n_topics + c.latent_dim + QUALITY_FACTORS).astype(np.float32)
        keeps, coefs = self._ou_coefficients(dt)
        self._periodic = self._periodic_term(tick)
        self.topic_term = np.empty(c.n_topics, np.float32)  # a new array: never changed later
        kernels.drift_step(self.trend, self.offset, self.quality_factors, keeps, coefs,
                           self._moving, z, self.topic_pop, self._periodic, self.topic_term)

    def reshuffle_topics(self, rng: np.random.Generator) -> None:
        """Abrupt shift: topics swap popularity (a random permutation of the popularity values)."""
        perm = rng.permutation(self.config.n_topics)
        if self.config.abrupt_topic_reshuffle:
            self.topic_pop = self.topic_pop[perm].copy()
            self.topic_term = (self.topic_pop + self.trend + self._periodic).astype(np.float32)

    def shift_recall(self, rng: np.random.Generator) -> None:
        c = self.config
        self.recall_topic_bias = (
            rng.standard_normal(c.n_topics) * c.recall_shift_topic_bias).astype(np.float32)
        self.n_relevance = int(round(c.recall_shift_share * c.n_candidates))

    def state_dict(self) -> dict:
        return {
            "topic_pop": self.topic_pop.copy(),
            "trend": self.trend.copy(),
            "offset": self.offset.copy(),
            "quality_factors": self.quality_factors.copy(),
            "recall_topic_bias": self.recall_topic_bias.copy(),
            "n_relevance": self.n_relevance,
        }
