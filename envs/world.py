"""The simulated world: users, items, recall, clicks, conversions and drift, in batch form.

One :class:`World` serves B requests per step (B = ``batch_size``), entirely in numpy. The
Gymnasium envs are thin views of it: ``VectorRerankEnv`` exposes the batch, ``RerankEnv`` is
B = 1.

Entities
    Items (M): true latent v_j (near its topic's centre), topic t_j, quality b_j, a fixed noisy
    projection that agents see, and running impression / click counts. Users (U): true taste
    u_i(t), position-bias sensitivity, activity weight (how often they arrive), boredom per
    topic and a decaying histogram of the topics they clicked.

A step
    1. ``serve(slates)``: click probabilities of the served slates (see ``click_model``), clicks
       and conversions drawn from the click stream, conversions queued with their delay, the
       reference slate and its expected reward computed from truth, consumption feedback and
       item statistics updated.
    2. time advances B ticks; due drift events fire; continuous drift moves.
    3. B new requests: users arrive (activity-weighted), their taste drifts lazily for the time
       since their last visit, recall picks N candidates (relevance-sampled + random).

Random streams
    Five independent generators: world (entities, from ``config.world_seed``), and arrivals,
    recall, clicks and drift (from the episode seed). Each step draws the same *amounts* from
    each stream whatever the agent does, so two agents on the same seed meet identical users,
    candidates, drift and dice (common random numbers); only consumption feedback, which
    depends on what was clicked, lets their worlds differ.
"""

from __future__ import annotations

import math

import numpy as np

from . import click_model as cm
from .calibration import install as install_calibration
from .calibration import load_calibration
from .config import WorldConfig
from .conversions import ConversionQueue
from .drift import DriftEvent, GlobalDrift
from .types import Conversions

FEATURE_BOUND = 10.0
STREAMS = ("world", "arrivals", "recall", "clicks", "drift")


def spawn_streams(world_seed: int, seed: int, salt: int = 0) -> dict[str, np.random.Generator]:
    """Five independent generators: the world stream from ``world_seed`` (same users and items
    for every episode seed), arrivals, recall, clicks and drift from ``seed``. ``salt`` != 0
    gives other streams for the same seed (offline logs, held-out evaluation)."""
    world = np.random.SeedSequence([world_seed, 0x3D])
    rest = np.random.SeedSequence([seed, salt] if salt else seed).spawn(len(STREAMS) - 1)
    return {name: np.random.default_rng(s)
            for name, s in zip(STREAMS, [world, *rest], strict=True)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class World:
    """State and mechanics of one simulated world serving ``batch_size`` requests per step."""

    def __init__(self, config: WorldConfig, batch_size: int, seed: int, stream_salt: int = 0):
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer")
        self.config = c = config
        self.batch_size = int(batch_size)
        self.rng = spawn_streams(c.world_seed, int(seed), stream_salt)
        g = self.rng["world"]
        m, u, d, t = c.n_items, c.n_users, c.latent_dim, c.n_topics
        self._k_aff = np.float32(c.affinity_scale * math.sqrt(d))

        # projection agents see through; entries ~N(0,1) so features have unit scale
        self.projection = g.standard_normal((c.obs_dim, d)).astype(np.float32)
        self.topic_centres = (g.standard_normal((t, d)) / math.sqrt(d)).astype(np.float32)

        # items
        self.item_topic = np.empty(m, np.int64)
        self.item_v = np.empty((m, d), np.float32)
        self.item_quality = np.empty(m, np.float32)
        self.item_noise = np.empty((m, c.obs_dim), np.float32)
        self.item_static = np.zeros((m, t + c.obs_dim), np.float32)
        self.item_id = np.arange(m, dtype=np.int64)
        self.item_born = np.zeros(m, np.int64)
        self.item_impressions = np.zeros(m, np.float64)
        self.item_clicks = np.zeros(m, np.float64)
        self._make_items(np.arange(m), g)
        self.next_item_id = m

        # users
        self.user_u = (g.standard_normal((u, d)) / math.sqrt(d)).astype(np.float32)
        self.user_noise = (g.standard_normal((u, c.obs_dim)) * c.feature_noise).astype(np.float32)
        self.user_sensitivity = g.uniform(0.5, 1.5, u).astype(np.float32)
        activity = g.lognormal(0.0, 1.0, u)
        self.user_activity_feature = np.clip(np.log(activity), -3, 3).astype(np.float32) / 3
        self._arrival_cdf = np.cumsum(activity / activity.sum())
        self._arrival_cdf[-1] = 1.0
        self.user_last_seen = np.full(u, -1, np.int64)
        self.user_boredom = np.zeros((u, t), np.float32)
        self.user_history = np.zeros((u, t), np.float32)

        self.drift = GlobalDrift(c, g)
        if c.calibration is not None:  # fitted entities replace the drawn ones (calibration.py)
            install_calibration(self, load_calibration(c.calibration))
        self.conversions = ConversionQueue()
        self.step_index = 0
        self.tick = 0
        self.events: list[DriftEvent] = self._fire_events(0)
        self._draw_requests()

    # ------------------------------------------------------------------ entities
    def _make_items(self, slots: np.ndarray, g: np.random.Generator) -> None:
        """(Re)create the items in ``slots``; draws a fixed amount from ``g``."""
        c = self.config
        n, d = slots.size, c.latent_dim
        topic = g.integers(c.n_topics, size=n)
        v = 0.8 * self.topic_centres[topic] + 0.6 * g.standard_normal((n, d)) / math.sqrt(d)
        self.item_topic[slots] = topic
        self.item_v[slots] = v
        self.item_quality[slots] = g.standard_normal(n) * c.quality_std
        self.item_noise[slots] = g.standard_normal((n, c.obs_dim)) * c.feature_noise
        static = np.zeros((n, c.n_topics + c.obs_dim), np.float32)
        static[np.arange(n), topic] = 1.0
        static[:, c.n_topics:] = np.clip(
            v.astype(np.float32) @ self.projection.T + self.item_noise[slots],
            -FEATURE_BOUND, FEATURE_BOUND)
        self.item_static[slots] = static

    # ------------------------------------------------------------------ drift events
    def _fire_events(self, start: int) -> list[DriftEvent]:
        events = self.drift.due_events(start, start + self.batch_size)
        g = self.rng["drift"]
        c = self.config
        for event in events:
            if event.kind == "abrupt":
                self.drift.reshuffle_topics(g)
                switch = g.random(c.n_users) < c.abrupt_user_share
                fresh = (g.standard_normal((c.n_users, c.latent_dim))
                         / math.sqrt(c.latent_dim)).astype(np.float32)
                self.user_u[switch] = fresh[switch]
            elif event.kind == "recall_shift":
                self.drift.shift_recall(g)
            elif event.kind == "churn":
                n_new = max(1, int(round(c.churn_fraction * c.n_items)))
                oldest = np.lexsort((np.arange(c.n_items), self.item_born))[:n_new]
                self._make_items(oldest, g)
                self.item_id[oldest] = np.arange(self.next_item_id, self.next_item_id + n_new)
                self.next_item_id += n_new
                self.item_born[oldest] = event.tick
                self.item_impressions[oldest] = 0
                self.item_clicks[oldest] = 0
        return events

    # ------------------------------------------------------------------ requests
    def _draw_requests(self) -> None:
        """Draw the next B requests: arrivals, lazy per-user drift, recall, features, truth."""
        c = self.config
        b = self.batch_size
        ticks = self.tick + np.arange(b, dtype=np.int64)
        users = np.searchsorted(self._arrival_cdf, self.rng["arrivals"].random(b), side="right")
        users = np.minimum(users, c.n_users - 1)
        gap = (ticks - self.user_last_seen[users]).astype(np.float32)
        first = self.user_last_seen[users] < 0
        gap[first] = ticks[first] + 1

        z = self.rng["drift"].standard_normal((b, c.latent_dim)).astype(np.float32)
        if math.isfinite(c.user_drift_timescale):
            a = np.exp(-gap / c.user_drift_timescale)[:, None]
            self.user_u[users] = a * self.user_u[users] + np.sqrt(1 - a * a) * (
                z / math.sqrt(c.latent_dim))
        if c.boredom_gain > 0:
            self.user_boredom[users] *= np.exp2(-gap / c.boredom_half_life)[:, None]
        self.user_history[users] *= np.exp2(-gap / c.history_half_life)[:, None]
        self.user_last_seen[users] = ticks

        u_eff = self.user_u[users] + self.drift.offset
        affinity = (u_eff @ self.item_v.T) * self._k_aff  # (B, M): one GEMM beats gathers
        cands = self._recall(affinity)

        topics, logit, pconv = self._candidate_truth(users, affinity, cands)
        self._req_users = users
        self._req_ticks = ticks
        self._req_gap = gap
        self._req_cands = cands
        self._req_topics = topics
        self._req_attraction = _sigmoid(logit)
        self._req_logit = logit
        self._req_pconv = pconv
        self._req_u_eff = u_eff
        self._obs: dict[str, np.ndarray] | None = None

    def _candidate_truth(self, users, affinity, cands):
        """Topics, true attraction logits and conversion probabilities of candidates (B, N).

        ``affinity`` is the (B, M) matrix of scaled true affinities u.v for the whole catalog.
        """
        c = self.config
        topics = self.item_topic[cands]
        core = cm.gather_rows(affinity, cands)
        logit = core + self.item_quality[cands] + self.drift.topic_term[topics] + np.float32(
            c.attraction_bias)
        if c.boredom_gain > 0:
            logit -= cm.gather_rows(self.user_boredom[users], topics)
        pconv = _sigmoid(c.conversion_bias + c.conversion_gain * core)
        return topics, logit.astype(np.float32), pconv.astype(np.float32)

    def reference_for(self, users: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """Greedy-on-truth reference slates for given users and candidate *slots* under the
        world's current state (pure; for tests and analysis of drift)."""
        affinity = ((self.user_u[users] + self.drift.offset) @ self.item_v.T) * self._k_aff
        topics, logit, pconv = self._candidate_truth(users, affinity, cands)
        return self._greedy(_sigmoid(logit), pconv, topics)

    def _greedy(self, attraction, pconv, topics) -> np.ndarray:
        """Greedy-on-truth slates from candidates' attraction, conversion probs and topics."""
        c = self.config
        value = attraction * (1.0 + c.conversion_weight * pconv)
        return cm.greedy_reference(value, topics, c.slate_size, c.repeat_penalty, c.contrast)

    def _recall(self, affinity: np.ndarray) -> np.ndarray:
        """N distinct candidate slots per request: relevance-sampled + random, shuffled.

        Each request reads a window of one fresh random permutation of the catalog (distinct
        items per request without a per-request shuffle); the first part of the window is a
        pool from which the best ``n_relevance`` by noisy true relevance are kept, the rest of
        the window are random candidates. Columns are then shuffled so that the position in the
        candidate list says nothing about how an item was recalled.
        """
        c = self.config
        g = self.rng["recall"]
        b, m = affinity.shape
        n_rel = self.drift.n_relevance
        n_pool = n_rel * c.recall_pool_factor
        length = n_pool + c.n_candidates - n_rel
        perm = g.permutation(m)
        offsets = g.integers(m, size=b)
        window = np.concatenate([perm, perm[:length]])[offsets[:, None] + np.arange(length)]
        noise = g.standard_normal((b, n_pool)).astype(np.float32)
        column_order = g.permutation(c.n_candidates)
        if n_rel == 0:
            return window[:, column_order]
        pool = window[:, :n_pool]
        topic = self.item_topic[pool]
        score = cm.gather_rows(affinity, pool)
        score += self.drift.topic_term[topic] + self.drift.recall_topic_bias[topic]
        score += np.float32(c.recall_noise) * noise
        if n_rel < n_pool:
            top = np.argpartition(-score, n_rel - 1, axis=1)[:, :n_rel]
            relevant = cm.gather_rows(window, top)  # top < n_pool: same as indexing pool
        else:
            relevant = pool
        cands = np.concatenate([relevant, window[:, n_pool:]], axis=1)
        return cands[:, column_order]

    def observation(self) -> dict[str, np.ndarray]:
        """Observation batch of the pending requests (see ``driftrank.envs.types``)."""
        if self._obs is None:
            self._obs = self._build_observation()
        return self._obs

    def _build_observation(self) -> dict[str, np.ndarray]:
        c = self.config
        users, cands = self._req_users, self._req_cands
        hist = self.user_history[users]
        hist = hist / (hist.sum(axis=1, keepdims=True) + 1.0)
        activity = self.user_activity_feature[users]
        user = np.empty((users.size, c.user_feature_dim), np.float32)
        user[:, : c.obs_dim] = self._req_u_eff @ self.projection.T + self.user_noise[users]
        user[:, c.obs_dim: c.obs_dim + c.n_topics] = hist
        user[:, -1] = activity
        np.clip(user, -FEATURE_BOUND, FEATURE_BOUND, out=user)

        feats = self._item_table()[cands]

        angle = 2 * np.pi * self._req_ticks / c.period
        context = np.empty((users.size, c.context_dim), np.float32)
        context[:, 0] = np.sin(angle)
        context[:, 1] = np.cos(angle)
        context[:, 2] = activity
        context[:, 3] = np.minimum(np.log1p(self._req_gap) / 10.0, FEATURE_BOUND)
        return {
            "user": user,
            "candidates": feats,
            "candidate_ids": self.item_id[cands],
            "context": context,
            "user_id": users.astype(np.int64),
        }

    def _item_table(self) -> np.ndarray:
        """(M, Fi) features of every catalog item now: static part + live statistics.

        Refreshing the whole (small) table once per step and gathering it once is cheaper than
        computing statistics per candidate when B x N exceeds M.
        """
        c = self.config
        s = self.item_static.shape[1]
        table = np.empty((c.n_items, c.item_feature_dim), np.float32)
        table[:, :s] = self.item_static
        impressions = self.item_impressions
        table[:, s] = np.log1p(impressions) / 10.0
        table[:, s + 1] = 5.0 * (self.item_clicks + 1.0) / (impressions + 20.0)
        table[:, s + 2] = np.exp((self.item_born - self.tick) / c.freshness_scale)
        return table

    # ------------------------------------------------------------------ truth
    def _slate_truth(self, slates: np.ndarray, shown: np.ndarray):
        """Conditional and marginal click probs and conversion probs of slates (no state change)."""
        c = self.config
        topics = np.where(shown, cm.gather_rows(self._req_topics, slates), cm.EMPTY)
        attraction = cm.gather_rows(self._req_attraction, slates)
        exam = cm.examination(self.user_sensitivity[self._req_users], c.slate_size,
                              c.position_bias)
        p_cond = cm.slate_click_probs(exam, attraction, topics, c.repeat_penalty, c.contrast)
        p_marg = cm.marginal_click_probs(p_cond, c.cascade_stop)
        pconv = cm.gather_rows(self._req_pconv, slates)
        return p_cond, p_marg, pconv

    def expected_reward(self, slates: np.ndarray) -> np.ndarray:
        """True expected reward (clicks + weighted conversions) of slates for the pending
        requests. Pure: changes nothing and draws nothing. Repeated indices count once."""
        slates = np.asarray(slates, dtype=np.int64)
        return self._expected(slates, ~repeated_mask(slates))

    def _expected(self, slates: np.ndarray, shown: np.ndarray) -> np.ndarray:
        _, p_marg, pconv = self._slate_truth(slates, shown)
        return (p_marg * (1.0 + self.config.conversion_weight * pconv)).sum(axis=1)

    def reference_slates(self) -> np.ndarray:
        """Greedy-on-truth reference slates (B, K) for the pending requests."""
        return self._greedy(self._req_attraction, self._req_pconv, self._req_topics)

    def true_attraction(self) -> np.ndarray:
        """(B, N) true attraction logits of the pending candidates (for the logging policy and
        the oracle only: agents must never read this)."""
        return self._req_logit

    # ------------------------------------------------------------------ serving
    def serve(self, slates: np.ndarray, with_truth: bool = True) -> dict:
        """Serve validated slates (B, K) for the pending requests and advance one step.

        Returns a dict with the labels (clicks, reward, conversions landing now, drift events
        that fired for the *next* requests) and, if ``with_truth``, the world's truth.
        """
        c = self.config
        b, k = slates.shape
        users = self._req_users
        shown = ~repeated_mask(slates)
        p_cond, p_marg, pconv = self._slate_truth(slates, shown)

        g = self.rng["clicks"]
        dice = g.random((3, b, k), dtype=np.float32)
        delays = np.ceil(g.exponential(c.conversion_delay_mean, (b, k))).astype(np.int64)
        delays = np.maximum(delays, 1)
        clicks = cm.sample_clicks(p_cond, c.cascade_stop, dice[0], dice[1])
        converted = clicks & (dice[2] < pconv)

        slots = cm.gather_rows(self._req_cands, slates)
        request_ids = self._req_ticks
        rows, positions = np.nonzero(converted)
        if rows.size:
            due = request_ids[rows] + delays[rows, positions]
            land = np.maximum(self.step_index + 1, due // b)
            self.conversions.push(
                land,
                request_id=request_ids[rows],
                row=rows,
                user_id=users[rows],
                item_id=self.item_id[slots[rows, positions]],
                position=positions,
                served_step=np.full(rows.size, self.step_index),
                delay=delays[rows, positions],
            )
        landed: Conversions = self.conversions.pop(self.step_index)
        n_clicks = clicks.sum(axis=1).astype(np.float32)
        reward = n_clicks + np.float32(c.conversion_weight) * np.bincount(
            landed.row, minlength=b).astype(np.float32)

        out = {
            "request_id": request_ids,
            "clicks": clicks.astype(np.float32),
            "reward": reward,
            "conversions": landed,
            "empty_slots": (~shown).sum(axis=1),
            "served_item_ids": np.where(shown, self.item_id[slots], -1),
        }
        if with_truth:
            reference = self.reference_slates()
            ref_reward = self._expected(reference, np.ones(reference.shape, bool))
            out["truth"] = {
                "click_probs": p_marg.astype(np.float32),
                "conversion_probs": pconv.astype(np.float32),
                "expected_reward": (p_marg * (1.0 + c.conversion_weight * pconv)).sum(axis=1),
                "reference_slate": reference,
                "reference_reward": ref_reward,
            }

        self._apply_feedback(users, slots, shown, clicks)
        self.step_index += 1
        self.tick += b
        self.drift.advance(self.tick, b, self.rng["drift"])
        self.events = self._fire_events(self.tick)
        out["drift_events"] = [e.as_dict() for e in self.events]
        self._draw_requests()
        return out

    def _apply_feedback(self, users, slots, shown, clicks) -> None:
        """Item statistics and consumption feedback (the only action-dependent world change)."""
        c = self.config
        m = c.n_items
        self.item_impressions += np.bincount(slots[shown], minlength=m)
        rows, positions = np.nonzero(clicks)
        if rows.size == 0:
            return
        clicked = slots[rows, positions]
        self.item_clicks += np.bincount(clicked, minlength=m)
        clicker = users[rows]
        topic = self.item_topic[clicked]
        np.add.at(self.user_history, (clicker, topic), 1.0)
        if c.boredom_gain > 0:
            np.add.at(self.user_boredom, (clicker, topic), np.float32(c.boredom_gain))
        if c.consumption_rate > 0:
            pull = c.consumption_rate * (self.item_v[clicked] - self.user_u[clicker])
            np.add.at(self.user_u, clicker, pull.astype(np.float32))


def repeated_mask(slates: np.ndarray) -> np.ndarray:
    """(B, K) True where a slot repeats an index shown in an earlier slot of the same slate."""
    k = slates.shape[1]
    same = slates[:, :, None] == slates[:, None, :]
    return (same & cm.earlier_mask(k)).any(axis=2)
