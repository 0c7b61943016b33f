"""The simulated world: users, items, recall, clicks, delayed labels and drift, in batch form.

One :class:`World` serves B requests per step (B = ``batch_size``), entirely in numpy. The
Gymnasium envs are thin views of it: ``VectorRerankEnv`` exposes the batch, ``RerankEnv`` is
B = 1. Users live in :mod:`~driftrank.envs.population`, items in
:mod:`~driftrank.envs.catalog`, shared drift in :mod:`~driftrank.envs.drift`.

A step
    1. ``serve(slates)``: click probabilities of the served slates (see ``click_model``), clicks
       and conversions drawn from the click stream, delayed labels queued, behaviour recorded
       (profiles, satisfaction, leaving, item counters, consumption feedback). Truth (the
       reference slate and its reward) is computed only if someone reads it.
    2. time advances B ticks; the item-statistics batch job publishes when due; new users join;
       due drift events fire; continuous drift moves.
    3. B new requests: users arrive (rate moved by satisfaction), their taste drifts lazily for
       the time since their last visit, recall picks N candidates (relevance-sampled + random).

Cost per step does not grow with the catalog or the user base: recall reads an arithmetic
progression of a fixed random relabelling of the catalog (distinct items, no per-step
permutation), affinities are computed only for the recall window (never B x M), and item
statistics are published by the batch job, not rebuilt per step.

Random streams
    Six independent generators: world (entities, from ``config.world_seed``), and arrivals,
    recall, clicks, drift and population (joiners) from the episode seed. Each step draws the
    same *amounts* from each of the first five whatever the agent does, so two agents on the
    same seed meet identical candidates, drift and dice (common random numbers) as long as the
    world does not react to them; consumption feedback and satisfaction-driven returns are the
    parts that do.
"""

from __future__ import annotations

import math

import numpy as np

from . import click_model as cm
from . import kernels
from .behaviour import BEHAVIOUR_EPSILON, BEHAVIOUR_NOISE, behaviour_slates
from .calibration import install as install_calibration
from .calibration import load_calibration
from .catalog import FEATURE_BOUND, Catalog
from .config import WorldConfig
from .conversions import FAST_MEAN_HOURS, FAST_SHARE, SLOW_MEAN_HOURS, ConversionQueue
from .drift import DriftEvent, GlobalDrift, schedule_frame
from .population import NEVER, Population
from .types import FIELDS, ClickReports, Conversions

STREAMS = ("world", "arrivals", "recall", "clicks", "drift", "population")
WARMUP_SALT = 0x5EED  # streams of the warm-up, distinct from every episode's
WARMUP_BATCH = 1000
RECALL_CHUNK = 64  # requests whose recall windows are gathered and scored together
__all__ = ["FEATURE_BOUND", "World", "repeated_mask", "spawn_streams"]


def spawn_streams(world_seed: int, seed: int, salt: int = 0) -> dict[str, np.random.Generator]:
    """Independent generators: the world stream from ``world_seed`` (same users and items for
    every episode seed), the others from ``seed``. ``salt`` != 0 gives other streams for the
    same seed (offline logs, held-out evaluation)."""
    world = np.random.SeedSequence([world_seed, 0x3D])
    rest = np.random.SeedSequence([seed, salt] if salt else seed).spawn(len(STREAMS) - 1)
    return {name: np.random.default_rng(s)
            for name, s in zip(STREAMS, [world, *rest], strict=True)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _integers(g: np.random.Generator, high: int, b: int) -> np.ndarray:
    """``g.integers(high, size=b)``. For b = 1 the scalar call, which draws the same number
    (numpy fills one bounded draw either way) without the microseconds the sized call spends
    on its ``size`` argument."""
    return g.integers(high, size=b) if b > 1 else np.array([g.integers(high)])


def _coprimes(m: int) -> np.ndarray:
    """Strides s in [1, m) with gcd(s, m) = 1: s * j mod m visits distinct slots for j < m."""
    if m == 1:
        return np.ones(1, np.int64)
    s = np.arange(1, m, dtype=np.int64)
    return s[np.gcd(s, m) == 1]


_EMPTY_2D = np.zeros((0, 0), np.float32)
_EMPTY_INT = np.zeros(0, np.int64)
_EMPTY_2D_INT = np.zeros((0, 0), np.int64)  # no delays (label_table), no picks (recall_pick)
_FEATURE_BOUND32 = np.float32(FEATURE_BOUND)
_LOG_RANK: dict[int, np.ndarray] = {}


def _log_rank(k: int) -> np.ndarray:
    """log(1 + position) as ``click_model.examination`` computes it (float32), cached."""
    table = _LOG_RANK.get(k)
    if table is None:
        table = _LOG_RANK[k] = np.log1p(np.arange(k, dtype=np.float32))
    return table
_REPEAT_FACTORS: dict[tuple[float, int], np.ndarray] = {}


def _repeat_factors(repeat_penalty: float, k: int) -> np.ndarray:
    """repeat_penalty ** r for r = 0..K as numpy computes it in ``click_model.context_factor``
    (float32 power), cached."""
    table = _REPEAT_FACTORS.get((repeat_penalty, k))
    if table is None:
        table = _REPEAT_FACTORS[(repeat_penalty, k)] = np.power(
            np.float32(repeat_penalty), np.arange(k + 1), dtype=np.float32)
    return table


class Float32Settings:
    """A config's float settings as numpy float32 scalars, converted once per world.

    The kernels compute in float32 as numpy does next to float32 arrays (where a Python float
    is cast to float32 first); converting on every call would cost a fraction of a
    microsecond each, a dozen times a step."""

    NAMES = ("cascade_stop", "contrast", "conversion_weight", "satisfaction_memory",
             "boredom_gain", "consumption_rate", "attraction_bias", "conversion_bias",
             "conversion_gain", "recall_noise")

    def __init__(self, config: WorldConfig):
        self.config = config
        for name in self.NAMES:
            setattr(self, name, np.float32(getattr(config, name)))
        self.keep_share = np.float32(1.0 - config.contrast)
        self.neg_position_bias = np.float32(-config.position_bias)
        self.taste_scale = np.float32(math.sqrt(config.latent_dim))


class WorkArrays:
    """The temporaries of one step at one batch size, reused from step to step.

    Only arrays no caller ever sees live here (masks, the served slots, the click model's
    conditional probabilities, the exponentials' arguments, ...). Everything handed out
    (observations, info arrays, the truth) is a fresh array every step, since callers may
    keep it.
    """

    def __init__(self, world: World, b: int):
        c = world.config
        k, h = c.slate_size, world.users.profile.shape[1]
        self.shown = np.empty((b, k), bool)
        self.converted = np.empty((b, k), bool)
        self.slots = np.empty((b, k), world._index_dtype)
        self.delays = np.empty((b, k), np.int64)
        self.slate_topics = np.empty((b, k), np.int64)
        self.p_cond = np.empty((b, k), np.float32)
        self.n_clicks = np.empty(b, np.int64)
        self.has_rows = np.empty(b, np.int64)
        self.decay = np.empty((b, h), np.float32)
        self.item_sum = np.empty((b, c.obs_dim), np.float32)
        # the arguments of the visit decays' exponentials (empty: that decay is off)
        self.taste_arg = np.empty(b if math.isfinite(c.user_drift_timescale) else 0, np.float32)
        self.boredom_arg = np.empty(b if c.boredom_gain > 0 else 0, np.float32)
        self.history_arg = np.empty(b, np.float32)
        self.exps = np.empty((3, b, c.n_candidates), np.float32)


class RequestTruth:
    """The true click model of one batch of requests (immutable once drawn)."""

    __slots__ = ("topics", "attraction", "pconv", "sensitivity", "config", "f32", "logit",
                 "_exam")

    def __init__(self, f32: Float32Settings, topics, attraction, pconv, sensitivity, logit,
                 exam=None):
        self.f32, self.config = f32, f32.config
        self.topics, self.attraction = topics, attraction
        self.pconv, self.sensitivity, self.logit = pconv, sensitivity, logit
        self._exam = exam

    def exam(self) -> np.ndarray:
        """(B, K) examination probabilities of the slate positions."""
        if self._exam is None:
            c = self.config
            self._exam = cm.examination(self.sensitivity, c.slate_size, c.position_bias)
        return self._exam

    def slate_truth(self, slates: np.ndarray, shown: np.ndarray):
        """Conditional and marginal click probabilities and conversion probabilities of
        ``slates`` (``World.serve`` computes the same in ``kernels.serve_clicks``)."""
        shape = slates.shape
        p_cond = np.empty(shape, np.float32)
        p_marg = np.empty(shape, np.float32)
        pconv = np.empty(shape, np.float32)
        kernels.slate_probs(slates, shown, self.topics, self.attraction, self.pconv,
                            self.exam(), _repeat_factors(self.config.repeat_penalty, shape[1]),
                            self.f32.keep_share, self.f32.contrast, self.f32.cascade_stop,
                            np.empty(shape, np.int64), p_cond, p_marg, pconv)
        return p_cond, p_marg, pconv

    def expected(self, slates: np.ndarray, shown: np.ndarray) -> np.ndarray:
        _, p_marg, pconv = self.slate_truth(slates, shown)
        return _expected_rewards(p_marg, pconv, self.f32.conversion_weight)

    def reference(self) -> np.ndarray:
        c = self.config
        value = np.empty(self.attraction.shape, np.float32)
        kernels.value_per_click(self.attraction, self.pconv, self.f32.conversion_weight, value)
        return cm.greedy_reference(value, self.topics, c.slate_size, c.repeat_penalty,
                                   c.contrast)


def _expected_rewards(p: np.ndarray, pconv: np.ndarray, weight: np.float32) -> np.ndarray:
    """``(p * (1 + weight * pconv)).sum(axis=1)`` (B,) with numpy's float32 arithmetic and
    pairwise row sums (the kernel's sum is numpy's for rows of up to 128)."""
    if p.shape[1] > 128:
        return (p * (1.0 + weight * pconv)).sum(axis=1)
    out = np.empty(p.shape[0], np.float32)
    kernels.expected_rewards(p, pconv, weight, out)
    return out


class LazyDict(dict):
    """A dict whose entries are computed on first read, group by group (``GROUPS``).

    Reading a key computes its group and every group before it (so the keys always appear in
    the same order); any read of the whole mapping (keys, items, iteration, comparison) fills
    it all, so it behaves as a plain dict to everyone; code that reads nothing, or only the
    cheap keys, skips the rest of the work.
    """

    GROUPS: tuple[tuple[str, ...], ...] = ()
    _GROUP_OF: dict[str, int] = {}  # key -> index of its group (made per subclass)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._GROUP_OF = {key: i for i, group in enumerate(cls.GROUPS) for key in group}

    def _compute(self, group: tuple[str, ...]) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def _fill(self, upto: str | None = None) -> None:
        last = len(self.GROUPS) - 1 if upto is None else self._GROUP_OF[upto]
        for group in self.GROUPS[: last + 1]:
            if not dict.__contains__(self, group[0]):
                for key, value in self._compute(group).items():
                    dict.__setitem__(self, key, value)

    def __missing__(self, key):
        if key in self._GROUP_OF:
            self._fill(key)
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key):
        return key in self._GROUP_OF or dict.__contains__(self, key)

    def __iter__(self):
        self._fill()
        return dict.__iter__(self)

    def __len__(self):
        self._fill()
        return dict.__len__(self)

    def __eq__(self, other):
        self._fill()
        if isinstance(other, LazyDict):
            other._fill()
        return dict.__eq__(self, other)

    __hash__ = None

    def keys(self):
        self._fill()
        return dict.keys(self)

    def items(self):
        self._fill()
        return dict.items(self)

    def values(self):
        self._fill()
        return dict.values(self)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __reduce__(self):
        self._fill()
        return (dict, (dict(dict.items(self)),))


class Truth(LazyDict):
    """``info["truth"]``: computed when read, so steps whose truth nobody reads skip it.

    Keys: ``click_probs`` and ``conversion_probs`` (B, K) of the served slates,
    ``expected_reward`` (B,), ``clicks`` (B, K) realised clicks (reported or not),
    ``reference_slate`` (B, K) greedy on truth and ``reference_reward`` (B,). The first four
    are one group (cheap), the reference another.
    """

    GROUPS = (("click_probs", "conversion_probs", "expected_reward", "clicks"),
              ("reference_slate", "reference_reward"))

    def __init__(self, request: RequestTruth, p_marg, pconv, clicks):
        super().__init__()
        self._request, self._served = request, (p_marg, pconv, clicks)

    def _compute(self, group: tuple[str, ...]) -> dict:
        request = self._request
        if group is self.GROUPS[0]:
            p_marg, pconv, clicks = self._served
            return {
                "click_probs": p_marg.astype(np.float32),
                "conversion_probs": pconv.astype(np.float32),
                "expected_reward": _expected_rewards(p_marg, pconv,
                                                     request.f32.conversion_weight),
                "clicks": clicks.astype(np.float32),
            }
        reference = request.reference()
        return {"reference_slate": reference,
                "reference_reward": request.expected(reference,
                                                     np.ones(reference.shape, bool))}


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
        d, t = c.latent_dim, c.n_topics
        self._k_aff = np.float32(c.affinity_scale * math.sqrt(d))
        self._f32 = Float32Settings(c)
        # what the visit gaps are divided by (as float32, as numpy casts them next to the
        # float32 gaps): taste drift timescale, boredom and history half-lives
        self._gap_scales = tuple(np.float32(x) for x in (
            c.user_drift_timescale, c.boredom_half_life, c.history_half_life))

        # projection agents see through; entries ~N(0,1) so features have unit scale
        self.projection = g.standard_normal((c.obs_dim, d)).astype(np.float32)
        self.topic_centres = (g.standard_normal((t, d)) / math.sqrt(d)).astype(np.float32)
        self.items = Catalog(c, g, self.projection, self.topic_centres)
        self.users = Population(c, g)
        self.drift = GlobalDrift(c, g)
        self._strides = _coprimes(c.n_items)
        fits = c.n_items * (c.n_candidates * c.recall_pool_factor + 1) < 2**31
        self._index_dtype = np.int32 if fits else np.int64
        self._recall_order = g.permutation(c.n_items).astype(self._index_dtype)
        # fitted entities replace the drawn ones: before the warm-up and the frozen truth
        if c.calibration is not None:
            install_calibration(self, load_calibration(c.calibration))

        self._buffers: dict[tuple, np.ndarray] = {}
        self._work = WorkArrays(self, self.batch_size)
        # ``kernels.conversion_delays``' settings, in the types numpy computes delays in
        self._delay_settings = (
            c.conversion_delay == "realistic", np.float32(FAST_SHARE), FAST_MEAN_HOURS,
            SLOW_MEAN_HOURS, float(c.ticks_per_hour), float(c.conversion_window_hours),
            np.float32(c.conversion_delay_mean))
        self.conversions = ConversionQueue()
        self.click_queue = ConversionQueue(ClickReports)
        self.step_index = 0
        self.tick = 0
        if c.warmup_ticks > 0:
            self._warm_up(int(seed), stream_salt)

        # the truth frozen at the episode start (what the stale oracle ranks by)
        self.users.taste0[:] = self.users.taste
        self.items.frozen_quality(self.drift.quality_factors)
        self._offset0 = self.drift.offset.copy()
        self._topic_term0 = self.drift.topic_term.copy()
        self.events: list[DriftEvent] = self._fire_events(0)
        self._draw_requests()

    def _warm_up(self, seed: int, stream_salt: int) -> None:
        """Serve ``warmup_ticks`` requests with the behaviour policy before the episode.

        An episode starts in a world that has been running: users have histories, items have
        statistics, the batch job has published. The warm-up runs on its own streams (the
        episode's streams are untouched), fires no scheduled events and records nothing; then
        the clock is moved so that the episode starts at tick 0 with the past at negative ticks.
        """
        c = self.config
        episode_rng, episode_b = self.rng, self.batch_size
        self.rng = spawn_streams(c.world_seed, seed, WARMUP_SALT + stream_salt)
        policy = np.random.default_rng([seed, WARMUP_SALT, stream_salt])
        self.batch_size = b = min(WARMUP_BATCH, c.warmup_ticks)
        self._work = WorkArrays(self, b)
        k = c.slate_size
        for _ in range(c.warmup_ticks // b):
            self._draw_requests()
            slates = behaviour_slates(self._req.logit, k, BEHAVIOUR_NOISE, BEHAVIOUR_EPSILON,
                                      policy)
            shown = np.ones(slates.shape, bool)
            p_cond = self._req.slate_truth(slates, shown)[0]
            dice = self.rng["clicks"].random((2, b, k), dtype=np.float32)
            clicks = cm.sample_clicks(p_cond, c.cascade_stop, dice[0], dice[1])
            self._apply_feedback(self._req_users, cm.gather_rows(self._req_cands, slates),
                                 shown, clicks)
            self.tick += b
            self.drift.advance(self.tick, b, self.rng["drift"])
        past = self.tick
        seen = self.users.last_seen != NEVER
        self.users.last_seen[seen] -= past
        self.users.profile_tick -= past
        self.items.born -= past
        self.items.publish()
        self.tick = 0
        self.drift.topic_term = self.drift._topic_term(0)
        self.rng, self.batch_size = episode_rng, episode_b
        self._buffers.clear()  # the warm-up's batch size is not the episode's
        self._work = WorkArrays(self, episode_b)

    def _scratch(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A work array the world reuses from step to step (never handed out): large fresh
        arrays cost a page fault per 4 KiB on every step."""
        key = (name, shape, dtype)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    # ------------------------------------------------------------------ v1 names
    @property
    def item_id(self) -> np.ndarray:
        return self.items.ids

    @property
    def item_impressions(self) -> np.ndarray:
        return self.items.impressions

    @property
    def user_u(self) -> np.ndarray:
        return self.users.taste

    @property
    def user_last_seen(self) -> np.ndarray:
        return self.users.last_seen

    def drift_schedule(self, horizon: int | None = None):
        """Every labelled drift row up to ``horizon`` ticks (default ``max_steps`` steps)."""
        if horizon is None:
            horizon = self.config.max_steps * self.batch_size
        return schedule_frame(self.config, horizon)

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
                self.users.taste[switch] = fresh[switch]
            elif event.kind == "quality_shock":
                self.items.shock(g)
            elif event.kind == "recall_shift":
                self.drift.shift_recall(g)
            elif event.kind == "churn":
                n_new = max(1, int(round(c.churn_fraction * c.n_items)))
                self.items.churn(self.items.oldest(n_new), g, event.tick)
        return events

    # ------------------------------------------------------------------ requests
    def _draw_requests(self) -> None:
        """Draw the next B requests: arrivals, lazy per-user drift, recall, truth."""
        c = self.config
        b = self.batch_size
        pop = self.users
        users = pop.arrivals(self.rng["arrivals"], b)
        ticks = np.empty(b, np.int64)
        gap = np.empty(b, np.float32)
        first = np.empty(b, bool)
        work = self._work
        keep, bored, history = work.taste_arg, work.boredom_arg, work.history_arg
        kernels.visit_gaps(users, self.tick, pop.last_seen, NEVER, *self._gap_scales, ticks, gap,
                           first, keep, bored, history)
        z = self.rng["drift"].standard_normal((b, c.latent_dim)).astype(np.float32)
        np.exp(keep, out=keep)
        np.exp2(bored, out=bored)
        np.exp2(history, out=history)
        u_eff = np.empty((b, c.latent_dim), np.float32)
        kernels.visit_update(users, ticks, pop.last_seen, keep, z, self._f32.taste_scale, bored,
                             history, pop.taste, pop.boredom, pop.history, self.drift.offset,
                             u_eff)
        cands, core = self._recall(u_eff)
        req = self._current_truth(users, cands, core)
        self._req_users = users
        self._req_ticks = ticks
        self._req_gap = gap
        self._req_first = first
        self._req_cands = cands
        self._req_u_eff = u_eff
        self._req = req
        self._obs: dict[str, np.ndarray] | None = None

    @property
    def _req_topics(self) -> np.ndarray:
        return self._req.topics

    @property
    def _req_attraction(self) -> np.ndarray:
        return self._req.attraction

    @property
    def _req_pconv(self) -> np.ndarray:
        return self._req.pconv

    def _recall(self, u_eff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N distinct candidate slots per request and their scaled true affinities (B, N).

        Each request reads an arithmetic progression (random offset, random stride coprime with
        M) of a fixed random relabelling of the catalog: distinct items per request at O(N)
        cost. The first part is a pool from which the best ``n_relevance`` by noisy true
        relevance (affinity + topic terms + the recall-shift bias) are kept; the rest are random
        candidates. Columns are then shuffled so that the position in the candidate list says
        nothing about how an item was recalled.
        """
        c = self.config
        g = self.rng["recall"]
        b = u_eff.shape[0]
        m = c.n_items
        n_rel = self.drift.n_relevance
        n_pool = n_rel * c.recall_pool_factor
        length = n_pool + c.n_candidates - n_rel
        offsets = _integers(g, m, b)
        stride_picks = _integers(g, self._strides.size, b)
        noise = g.standard_normal((b, n_pool))
        column_order = g.permutation(c.n_candidates)
        index = self._index_dtype
        window = np.empty((b, length), index)
        # in chunks of requests, so the gathered vectors are still in cache for the product
        vectors = self._scratch("vectors", (min(b, RECALL_CHUNK), length, c.latent_dim),
                                np.float32)
        # affinities unscaled: the kernels scale them
        if b <= RECALL_CHUNK:  # one chunk: the same product, without slicing every array
            kernels.recall_window(offsets, stride_picks, self._strides, length,
                                  self._recall_order, self.items.v, window, vectors)
            affinity = np.matmul(vectors, u_eff[:, :, None])[:, :, 0]
        else:
            affinity = np.empty((b, length), np.float32)
            for lo in range(0, b, RECALL_CHUNK):
                hi = min(b, lo + RECALL_CHUNK)
                chunk = vectors[: hi - lo]
                kernels.recall_window(offsets[lo:hi], stride_picks[lo:hi], self._strides,
                                      length, self._recall_order, self.items.v, window[lo:hi],
                                      chunk)
                affinity[lo:hi] = np.matmul(chunk, u_eff[lo:hi, :, None])[:, :, 0]
        cands = np.empty((b, c.n_candidates), index)
        core = np.empty((b, c.n_candidates), np.float32)
        top = _EMPTY_2D_INT  # no selection: the whole pool is kept
        if 0 < n_rel < n_pool:
            score = np.empty((b, n_pool), np.float32)
            kernels.recall_scores(affinity, self._k_aff, window, self.items.topic,
                                  self.drift.topic_term, self.drift.recall_topic_bias,
                                  self._f32.recall_noise, noise, score)
            top = score.argpartition(n_rel - 1, axis=1)
        kernels.recall_pick(window, affinity, self._k_aff, top, n_rel, n_pool, column_order,
                            cands, core)
        return cands, core

    def observation(self) -> dict[str, np.ndarray]:
        """Observation batch of the pending requests (see ``driftrank.envs.types``)."""
        if self._obs is None:
            self._obs = self._build_observation()
        return self._obs

    def _build_observation(self) -> dict[str, np.ndarray]:
        c = self.config
        users, cands = self._req_users, self._req_cands
        pop = self.users
        user = pop.features(users, self._req_u_eff, self.projection, FEATURE_BOUND)
        if c.user_features == "taste":
            activity = pop.activity_feature[users]
        else:  # observed visit frequency (log visits / 5, clipped as the user features are)
            activity = user[:, -3]
        angle = 2 * np.pi * self._req_ticks / c.period
        context = np.empty((users.size, c.context_dim), np.float32)
        kernels.context_features(np.sin(angle), np.cos(angle), activity, np.log1p(self._req_gap),
                                 _FEATURE_BOUND32, context)
        return {
            "user": user,
            "candidates": self.items.features(cands, self.tick),
            "candidate_ids": self.items.ids[cands],
            "context": context,
            "user_id": pop.ids[users],
        }

    # ------------------------------------------------------------------ truth
    def _slate_truth(self, slates: np.ndarray, shown: np.ndarray):
        """Conditional and marginal click probs and conversion probs (no state change)."""
        return self._req.slate_truth(slates, shown)

    def expected_reward(self, slates: np.ndarray) -> np.ndarray:
        """True expected reward (clicks + weighted conversions) of slates for the pending
        requests. Pure: changes nothing and draws nothing. Repeated indices count once."""
        slates = np.asarray(slates, dtype=np.int64)
        return self._req.expected(slates, ~repeated_mask(slates))

    def reference_slates(self) -> np.ndarray:
        """Greedy-on-truth reference slates (B, K) for the pending requests."""
        return self._req.reference()

    def reference_for(self, users: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """Greedy-on-truth reference slates for given user and candidate *slots* under the
        world's current state (pure; for tests and analysis of drift)."""
        return self._truth_for(users, cands, frozen=False).reference()

    def frozen_reference_slates(self) -> np.ndarray:
        """Greedy slates (B, K) for the pending requests on the truth *frozen at the episode
        start*: tastes, item quality, topic terms and population offset as they were at tick 0
        (users and items that arrived later count at the prior mean). What a perfect model of
        the pretraining world would serve; ``stale-oracle`` serves it."""
        return self._truth_for(self._req_users, self._req_cands, frozen=True).reference()

    def _truth_for(self, users, cands, frozen: bool, core=None) -> RequestTruth:
        """The click model of ``users`` facing candidate slots ``cands`` (B, N), under the
        current truth or the one frozen at the start; ``core`` = scaled affinities if known.
        The one place where the attraction logit is put together."""
        c = self.config
        pop, items = self.users, self.items
        if core is not None and not frozen:
            return self._current_truth(users, cands, core)
        if frozen:
            u_eff = pop.taste0[users] + self._offset0
            quality = items.quality0[cands]
            topic_term = self._topic_term0
        else:
            u_eff = pop.taste[users] + self.drift.offset
            quality = items.quality_now(cands, self.drift.quality_factors)
            topic_term = self.drift.topic_term
        if core is None:
            core = np.einsum("bnd,bd->bn", items.v[cands], u_eff) * self._k_aff
        topics = items.topic[cands]
        logit = core + quality + topic_term[topics] + np.float32(c.attraction_bias)
        if c.boredom_gain > 0 and not frozen:
            logit = logit - cm.gather_rows(pop.boredom[users], topics)
        pconv = _sigmoid(c.conversion_bias + c.conversion_gain * core).astype(np.float32)
        logit = logit.astype(np.float32)
        return RequestTruth(self._f32, topics, _sigmoid(logit), pconv, pop.sensitivity[users],
                            logit)

    def _current_truth(self, users, cands, core) -> RequestTruth:
        """``_truth_for`` under the current truth with known affinities, in two kernels and
        one numpy ``exp`` (attraction, conversion and examination exponentials together)."""
        c, f32 = self.config, self._f32
        pop, items = self.users, self.items
        b, n = cands.shape
        k = c.slate_size
        shift = (items.loading[cands] @ self.drift.quality_factors
                 if c.quality_drift_scale > 0 else _EMPTY_2D)
        topics = np.empty((b, n), np.int64)
        logit = np.empty((b, n), np.float32)
        exps = self._work.exps
        kernels.truth_logits(cands, core, users, items.quality, shift, items.topic,
                             self.drift.topic_term, f32.attraction_bias,
                             pop.boredom if c.boredom_gain > 0 else _EMPTY_2D,
                             f32.conversion_bias, f32.conversion_gain,
                             pop.sensitivity, f32.neg_position_bias,
                             _log_rank(k), topics, logit, exps)
        np.exp(exps, out=exps)
        attraction = np.empty((b, n), np.float32)
        pconv = np.empty((b, n), np.float32)
        exam = np.empty((b, k), np.float32)
        kernels.sigmoids(exps, attraction, pconv, exam)
        return RequestTruth(f32, topics, attraction, pconv, None, logit, exam)

    def true_attraction(self) -> np.ndarray:
        """(B, N) true attraction logits of the pending candidates (for the logging policy and
        the oracle only: agents must never read this)."""
        return self._req.logit

    # ------------------------------------------------------------------ serving
    def serve(self, slates: np.ndarray, with_truth: bool = True) -> dict:
        """Serve validated slates (B, K) for the pending requests and advance one step.

        Returns a dict with the labels reported now (``clicks`` on these slates, delayed
        ``click_reports`` and ``conversions`` landing now), reward, drift events that fired
        for the *next* requests, return gaps, active users and, if ``with_truth``, a lazily
        computed :class:`Truth`.
        """
        c = self.config
        b, k = slates.shape
        users = self._req_users
        req, work, f32 = self._req, self._work, self._f32
        g = self.rng["clicks"]
        dice = g.random((4, b, k), dtype=np.float32)
        expo = g.standard_exponential((b, k), dtype=np.float32)
        shown, converted, slots = work.shown, work.converted, work.slots
        clicks = np.empty((b, k), bool)
        p_marg = np.empty((b, k), np.float32)  # these three are handed out (truth)
        pconv = np.empty((b, k), np.float32)
        n_clicks, n_converted = kernels.serve_clicks(
            slates, self._req_cands, req.topics, req.attraction, req.pconv, req.exam(),
            _repeat_factors(c.repeat_penalty, k), f32.keep_share, f32.contrast,
            f32.cascade_stop, dice, shown, work.slate_topics, work.p_cond, p_marg, pconv,
            clicks, converted, slots)
        request_ids = self._req_ticks
        item_ids = self.items.ids[slots]
        labels = (request_ids, users, self.users.ids, item_ids, self.step_index)

        if n_converted:
            delays = work.delays
            if kernels.conversion_delays(converted, dice[3], expo, *self._delay_settings,
                                         delays):
                self.conversions.push_sorted(*kernels.queued_labels(converted, delays, *labels,
                                                                    b))
        landed: Conversions = self.conversions.pop(self.step_index)

        if c.click_delay == 0:
            reports = ClickReports(*(kernels.label_table(clicks, _EMPTY_2D_INT, *labels)
                                     if n_clicks else (_EMPTY_INT,) * len(FIELDS)))
            reported_now = clicks.astype(np.float32)
        else:
            if n_clicks:
                self.click_queue.push_sorted(*kernels.queued_labels(
                    clicks, np.full((b, k), c.click_delay, np.int64), *labels, b))
            reports = self.click_queue.pop(self.step_index)
            reported_now = np.zeros((b, k), np.float32)
        empty_slots = np.empty(b, np.int64)
        served = np.empty((b, k), np.int64)
        gap = np.empty(b, np.int64)
        reward = np.empty(b, np.float32)
        kernels.step_outputs(shown, item_ids, self._req_first, self._req_gap, reports.row,
                             landed.row, f32.conversion_weight, empty_slots, served,
                             gap, reward)
        out = {
            "request_id": request_ids,
            "clicks": reported_now,
            "click_reports": reports,
            "reward": reward,
            "conversions": landed,
            "empty_slots": empty_slots,
            "served_item_ids": served,
            "return_gap": gap,
        }
        if with_truth:
            out["truth"] = Truth(req, p_marg, pconv, clicks)

        self._apply_feedback(users, slots, shown, clicks)
        self.step_index += 1
        before = self.tick
        self.tick += b
        self.items.maybe_publish(before, self.tick)
        out["joined"] = self.users.join(self.rng["population"], b)
        out["active_users"] = self.users.n_active
        self.drift.advance(self.tick, b, self.rng["drift"])
        self.events = self._fire_events(self.tick)
        out["drift_events"] = [e.as_dict() for e in self.events]
        self._draw_requests()
        return out

    def _apply_feedback(self, users, slots, shown, clicks) -> None:
        """Behaviour the world records: item counters, user profiles, satisfaction, leaving,
        consumption feedback (the action-dependent world changes)."""
        c, f32 = self.config, self._f32
        pop, items = self.users, self.items
        work = self._work
        n_clicks, has_rows, decay, item_sum = (work.n_clicks, work.has_rows, work.decay,
                                               work.item_sum)
        n_has = kernels.feedback(
            users, slots, shown, clicks, items.impressions, items.clicks, items.topic,
            items.static, c.n_topics, items.v, pop.visits, pop.clicks, pop.satisfaction,
            pop.bad_run, pop.history, pop.boredom, pop.taste, f32.satisfaction_memory,
            f32.boredom_gain, f32.consumption_rate, self._req_ticks,
            pop.profile_tick, pop._inv_half, n_clicks, has_rows, decay, item_sum)
        if c.leave_after > 0:
            pop.leave(users)
        if n_has:
            decay = decay[:n_has]
            np.exp2(decay, out=decay)
            kernels.profile_update(has_rows, users, self._req_ticks, decay, item_sum, n_clicks,
                                   pop.profile, pop.profile_weight, pop.profile_tick)


def repeated_mask(slates: np.ndarray) -> np.ndarray:
    """(B, K) True where a slot repeats an index shown in an earlier slot of the same slate."""
    k = slates.shape[1]
    same = slates[:, :, None] == slates[:, None, :]
    return (same & cm.earlier_mask(k)).any(axis=2)
