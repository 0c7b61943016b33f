"""The users: hidden tastes, behaviour-derived profiles, arrivals, leaving and joining.

A recommender never sees a user's taste, only what the user did. So the observed profile is
built from behaviour (``user_features="history"``, the default): for each half-life in
``profile_half_lives`` a decayed average of the *observed* feature vectors of the items the user
clicked, plus a decaying topic histogram of those clicks and three counters (log visits, log
clicks, satisfaction = decayed clicks per visit). Drift in taste therefore shows in the features
only as the user's new clicks accumulate: with lag, which is what adaptation is for. A cold user
(no clicks yet) has an all-zero profile. ``user_features="taste"`` replaces the first profile
block with a noisy projection of the *current* taste (the v1 world): the control in which
features reveal drift at once and adaptation should gain little.

Returns depend on what users are shown: a user's arrival rate is its base (log-normal) rate
times ``exp(return_sensitivity * (satisfaction - satisfaction_reference))``, clipped to
[1/4, 2]. Arrivals are drawn by thinning a fixed number of base-rate proposals, so the amount of
randomness drawn per step never depends on the agent. A user whose last ``leave_after`` visits
brought no click leaves (its slot goes free); new users join free slots at ``join_rate`` per
tick, with fresh ids, a fresh taste and no history. Every per-user array is indexed by slot, so
leaving and joining never reshape anything.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from . import kernels
from .config import WorldConfig

RATE_MIN, RATE_MAX = 0.25, 2.0
NEVER = -(2**62)  # last_seen of a user who has not visited yet (warm-up visits are < 0)
PROPOSALS_PER_REQUEST = 6


class Population:
    """Per-slot user state; ``ids[slot]`` is the id agents see (new joiners get new ids)."""

    def __init__(self, c: WorldConfig, g: np.random.Generator):
        self.config = c
        u, d, t = c.n_users, c.latent_dim, c.n_topics
        self.taste = (g.standard_normal((u, d)) / math.sqrt(d)).astype(np.float32)
        # the taste every user had at the episode start: what the stale oracle ranks by
        self.taste0 = self.taste.copy()
        self.noise = (g.standard_normal((u, c.obs_dim)) * c.feature_noise).astype(np.float32)
        self.sensitivity = g.uniform(0.5, 1.5, u).astype(np.float32)
        activity = g.lognormal(0.0, 1.0, u)
        self.activity_feature = (np.clip(np.log(activity), -3, 3) / 3).astype(np.float32)
        self._alias_prob, self._alias = _alias_table(activity / activity.sum())
        self.ids = np.arange(u, dtype=np.int64)
        self.next_id = u
        self.active = np.ones(u, bool)
        self.free: deque[int] = deque()
        if c.initial_active_share < 1.0:
            off = np.sort(g.choice(u, u - max(1, int(round(c.initial_active_share * u))),
                                   replace=False))
            self.active[off] = False
            self.free.extend(off.tolist())
        self.n_active = int(self.active.sum())
        self.dynamic_rates = (c.return_sensitivity > 0 or c.leave_after > 0
                              or c.initial_active_share < 1.0)

        self.last_seen = np.full(u, NEVER, np.int64)
        self.boredom = np.zeros((u, t), np.float32)
        self.history = np.zeros((u, t), np.float32)
        h = len(c.profile_half_lives)
        self.profile = np.zeros((u, h, c.obs_dim), np.float32)
        self.profile_weight = np.zeros((u, h), np.float32)
        self.profile_tick = np.zeros(u, np.int64)
        self._inv_half = np.array([0.0 if math.isinf(x) else 1.0 / x
                                   for x in c.profile_half_lives], np.float32)
        self.counts = np.zeros((2, u), np.int64)  # visits and clicks, gathered together
        self.visits, self.clicks = self.counts[0], self.counts[1]
        self.satisfaction = np.full(u, c.satisfaction_reference, np.float32)
        self.bad_run = np.zeros(u, np.int64)

    # ------------------------------------------------------------------ arrivals
    def arrivals(self, rng: np.random.Generator, b: int) -> np.ndarray:
        """Slots of the next ``b`` arriving users (a fixed amount of randomness per call)."""
        r = PROPOSALS_PER_REQUEST * b + 8
        u = self.config.n_users
        props = np.empty(r, np.int64)  # alias method: O(1) per draw, two reads whatever U is
        kernels.alias_draws(rng.random(r), float(u), self._alias_prob, self._alias, props)
        unif = rng.random(r)
        if not self.dynamic_rates:
            return props[:b]
        rate = self.rate_multiplier(props)
        accept = np.flatnonzero(unif * RATE_MAX < rate)
        if accept.size >= b:
            return props[accept[:b]]
        # rare: too few accepted; fill with the rejected proposals of active users, in order
        spare = np.flatnonzero((unif * RATE_MAX >= rate) & self.active[props])
        chosen = np.concatenate([props[accept], props[spare]])[:b]
        if chosen.size < b:  # almost nobody active among the proposals
            pool = np.flatnonzero(self.active)
            chosen = np.concatenate([chosen, pool[rng.integers(pool.size, size=b)]])[:b]
        return chosen

    def rate_multiplier(self, slots: np.ndarray) -> np.ndarray:
        """Arrival-rate multiplier of ``slots`` (0 for users who left)."""
        c = self.config
        rate = np.exp(np.float32(c.return_sensitivity)
                      * (self.satisfaction[slots] - np.float32(c.satisfaction_reference)))
        return np.clip(rate, RATE_MIN, RATE_MAX) * self.active[slots]

    # ------------------------------------------------------------------ observation
    def features(self, slots: np.ndarray, taste_now: np.ndarray | None,
                 projection: np.ndarray, bound: float = math.inf) -> np.ndarray:
        """(B, Fu) observed user features (see the module docstring), clipped to
        [-bound, bound]."""
        c = self.config
        h, o = self.profile.shape[1], c.obs_dim
        out = np.empty((slots.size, c.user_feature_dim), np.float32)
        log_counts = self.counts.take(slots, axis=1).astype(np.float64)  # visits, clicks
        np.log1p(log_counts, out=log_counts)
        if c.n_topics <= 128:  # the kernel sums a topic histogram as numpy does up to 128
            kernels.user_features(slots, self.profile, self.profile_weight, self.history,
                                  self.satisfaction, log_counts, np.float32(bound), out)
        else:
            weight = self.profile_weight[slots]
            blocks = self.profile[slots] / np.maximum(weight, 1e-12)[:, :, None]
            out[:, : h * o] = blocks.reshape(slots.size, h * o)
            hist = self.history[slots]
            out[:, h * o: h * o + c.n_topics] = hist / (hist.sum(axis=1, keepdims=True) + 1.0)
            out[:, -3:-1] = (log_counts / 5.0).T
            out[:, -1] = self.satisfaction[slots]
            np.clip(out, -bound, bound, out=out)
        if c.user_features == "taste":
            out[:, :o] = taste_now @ projection.T + self.noise[slots]
            np.clip(out[:, :o], -bound, bound, out=out[:, :o])
        return out

    # ------------------------------------------------------------------ behaviour
    def leave(self, slots: np.ndarray) -> np.ndarray:
        """Users among ``slots`` whose run of visits without a click reached ``leave_after``
        leave (their slots go free); returns the slots that left. (Visits, clicks,
        satisfaction and profiles are recorded by ``kernels.feedback`` and
        ``kernels.profile_update``.)"""
        gone = np.unique(slots[self.bad_run[slots] >= self.config.leave_after])
        gone = gone[self.active[gone]]
        if gone.size:
            self.active[gone] = False
            self.free.extend(gone.tolist())
            self.n_active -= int(gone.size)
        return gone

    def join(self, rng: np.random.Generator, b: int) -> int:
        """New users join free slots (cold: fresh taste and id, no history); how many joined."""
        c = self.config
        wanted = int(rng.binomial(b, c.join_rate)) if c.join_rate > 0 else 0
        n = min(wanted, len(self.free))
        if n == 0:
            return 0
        slots = np.array([self.free.popleft() for _ in range(n)], np.int64)
        d = c.latent_dim
        self.taste[slots] = rng.standard_normal((n, d)).astype(np.float32) / math.sqrt(d)
        self.taste0[slots] = 0.0  # unknown when the episode started
        self.ids[slots] = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        self.active[slots] = True
        self.n_active += n
        for arr in (self.boredom, self.history, self.profile, self.profile_weight):
            arr[slots] = 0
        self.last_seen[slots] = NEVER
        self.profile_tick[slots] = 0
        self.visits[slots] = 0
        self.clicks[slots] = 0
        self.bad_run[slots] = 0
        self.satisfaction[slots] = c.satisfaction_reference
        return n


def _alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of the distribution ``p`` (Vose's O(n) construction, vectorised
    in rounds): draw i uniformly, keep it with probability ``prob[i]``, else take
    ``alias[i]``."""
    n = p.size
    scaled = p * n
    prob = np.ones(n, np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = np.flatnonzero(scaled < 1.0)
    large = np.flatnonzero(scaled >= 1.0)
    while small.size and large.size:
        k = min(small.size, large.size)
        s, lg = small[:k], large[:k]
        prob[s] = scaled[s]
        alias[s] = lg
        # each large donates what its partner lacked; a large can donate once per round
        np.subtract.at(scaled, lg, 1.0 - scaled[s])
        done_large = lg[scaled[lg] < 1.0]
        small = np.concatenate([small[k:], done_large])
        large = np.concatenate([lg[scaled[lg] >= 1.0], large[k:]])
    return prob, alias
