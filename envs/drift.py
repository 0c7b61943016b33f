"""Drift: the population-level processes and the schedule of discrete events.

Per-user processes (each taste's Ornstein-Uhlenbeck walk, boredom, consumption pull) live with
the users in :mod:`driftrank.envs.world`, applied lazily when a user arrives. This module holds
what is shared by everyone:

- a topic **trend** and a population-wide **taste offset**, both OU processes (mean-reverting
  random walks, so they move but never blow up);
- a **periodic** daily cycle of topic trends with a random phase per topic;
- **topic popularity**, which an abrupt shift reshuffles;
- the **recall stage's** topic bias and relevance share, which a recall shift changes;
- the **event schedule**: abrupt shifts, recall shifts and catalog churn, at fixed ticks.

All randomness after construction comes from the drift stream, in amounts that do not depend on
what agents do, so every agent on the same seed meets the same drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import WorldConfig


@dataclass(frozen=True)
class DriftEvent:
    """A discrete drift event; ``kind`` is ``abrupt``, ``recall_shift`` or ``churn``."""

    tick: int
    kind: str

    def as_dict(self) -> dict:
        return {"tick": self.tick, "kind": self.kind}


def _ou_step(x: np.ndarray, dt: float, timescale: float, scale: float, z: np.ndarray) -> None:
    """In-place exact OU update with stationary std ``scale``."""
    a = math.exp(-dt / timescale)
    x *= a
    x += math.sqrt(max(0.0, 1.0 - a * a)) * scale * z


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
        self.recall_topic_bias = np.zeros(t, np.float32)
        self.n_relevance = c.n_relevance
        self._events = sorted(
            [DriftEvent(int(x), "abrupt") for x in c.abrupt_times]
            + [DriftEvent(int(x), "recall_shift") for x in c.recall_shift_times],
            key=lambda e: e.tick,
        )
        self._next = 0
        self._next_churn = c.churn_interval if c.churn_interval > 0 else None
        self.topic_term = self._topic_term(0)

    def _topic_term(self, tick: int) -> np.ndarray:
        c = self.config
        self._periodic = np.zeros(c.n_topics, np.float32)
        if c.periodic_amplitude > 0:
            angle = 2 * math.pi * tick / c.period + self.phase
            self._periodic = (c.periodic_amplitude * np.sin(angle)).astype(np.float32)
        return (self.topic_pop + self.trend + self._periodic).astype(np.float32)

    def due_events(self, start: int, stop: int) -> list[DriftEvent]:
        """Events with ``start <= tick < stop``, in order; each is returned once."""
        fired: list[DriftEvent] = []
        while self._next < len(self._events) and self._events[self._next].tick < stop:
            if self._events[self._next].tick >= start:
                fired.append(self._events[self._next])
            self._next += 1
        while self._next_churn is not None and self._next_churn < stop:
            if self._next_churn >= start:
                fired.append(DriftEvent(self._next_churn, "churn"))
            self._next_churn += self.config.churn_interval
        fired.sort(key=lambda e: e.tick)
        return fired

    def advance(self, tick: int, dt: int, rng: np.random.Generator) -> None:
        """Move the continuous processes forward ``dt`` ticks, to ``tick``."""
        c = self.config
        z_trend = rng.standard_normal(c.n_topics).astype(np.float32)
        z_offset = rng.standard_normal(c.latent_dim).astype(np.float32)
        if c.trend_scale > 0:
            _ou_step(self.trend, dt, c.trend_timescale, c.trend_scale, z_trend)
        if c.population_drift_scale > 0:
            scale = c.population_drift_scale / math.sqrt(c.latent_dim)
            _ou_step(self.offset, dt, c.population_drift_timescale, scale, z_offset)
        self.topic_term = self._topic_term(tick)

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
            "recall_topic_bias": self.recall_topic_bias.copy(),
            "n_relevance": self.n_relevance,
        }
