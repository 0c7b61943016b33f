"""World configuration: every size and rate of the simulator, with validation.

A :class:`WorldConfig` is a plain frozen dataclass, so it hashes (checkpoint caches key on it),
prints readably and round-trips through ``dataclasses.asdict`` / JSON. Named scenarios
(:mod:`driftrank.envs.scenarios`) are bundles of overrides on top of these defaults.

Two seeds, on purpose: ``world_seed`` (part of the config) draws the entities — users, items,
topics — and the episode seed passed to ``reset`` draws arrivals, recall, clicks and drift. So a
grid over seeds replays the *same world* under different streams, and a model pretrained once
per world config serves every seed (vary ``world_seed`` to vary the world itself).

Time is counted in *ticks*: one tick = one request. A vector env serving B requests per step
advances B ticks per step, so rates and schedules mean the same thing at every batch size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .calibration import calibrated_settings


@dataclass(frozen=True)
class WorldConfig:
    # --- sizes -------------------------------------------------------------------------------
    n_items: int = 2000  # M, catalog size (constant: churn replaces items)
    n_users: int = 10_000  # U
    latent_dim: int = 16  # d, true taste / item vectors
    n_topics: int = 20  # T
    n_candidates: int = 50  # N, recall output per request
    slate_size: int = 10  # K, slate length
    obs_dim: int = 16  # dimension of the noisy projections agents see
    world_seed: int = 0  # draws users, items and topics; the episode seed draws everything else
    feature_noise: float = 0.3  # std of the fixed per-entity noise on those projections

    # --- click model -------------------------------------------------------------------------
    affinity_scale: float = 1.5  # weight of the true affinity u.v in the attraction logit
    attraction_bias: float = -2.5  # base logit of attraction
    quality_std: float = 0.5  # std of the per-item quality bias b_j
    topic_pop_scale: float = 0.6  # std of the topic popularity term
    position_bias: float = 0.8  # examination(k) = (k+1)^-(position_bias * s_i)
    repeat_penalty: float = 0.5  # factor per earlier slot with the same topic
    contrast: float = 0.2  # share of attraction that depends on topic contrast with neighbours
    cascade_stop: float = 0.0  # probability the user stops examining after a click

    # --- what agents observe (v2) -------------------------------------------------------------
    user_features: str = "history"  # "history": behaviour-derived profile; "taste": v1 control
    profile_half_lives: tuple[float, ...] = (500.0, 10_000.0, math.inf)  # ticks; inf = lifetime
    stats_refresh: int = 2_000  # ticks between batch publications of item statistics; 0 = live
    warmup_ticks: int = 10_000  # history served by the behaviour policy before the episode

    # --- feedback timing ---------------------------------------------------------------------
    click_delay: int = 0  # ticks before a click is reported to the recommender; 0 = at once
    conversion_delay: str = "realistic"  # "realistic" (Chapelle 2014 shape) or "exponential"
    ticks_per_hour: float = 400.0  # clock of the realistic conversion delay
    conversion_window_hours: float = 720.0  # attribution window: later purchases never report
    conversion_delay_mean: float = 500.0  # mean delay (ticks) when conversion_delay="exponential"

    # --- conversions -------------------------------------------------------------------------
    conversion_bias: float = -2.0  # logit of a purchase given a click ...
    conversion_gain: float = 1.0  # ... plus this times the true affinity logit
    conversion_weight: float = 1.0  # reward of a conversion relative to a click

    # --- returns, leaving, joining -----------------------------------------------------------
    return_sensitivity: float = 0.0  # arrival rate x exp(this * (satisfaction - reference))
    satisfaction_reference: float = 2.0  # clicks per visit at which a user returns at base rate
    satisfaction_memory: float = 0.3  # weight of the latest visit in the satisfaction average
    leave_after: int = 0  # a user leaves after this many visits in a row without a click; 0=never
    join_rate: float = 0.0  # probability per tick that a new (cold) user joins a free slot
    initial_active_share: float = 1.0  # share of the U user slots active at the start

    # --- hidden item quality drift -----------------------------------------------------------
    quality_drift_scale: float = 0.0  # stationary std of each item's quality random walk
    quality_drift_timescale: float = 20_000.0  # OU timescale of that walk (ticks)
    quality_shock_times: tuple[int, ...] = ()  # ticks of abrupt item-quality shocks
    quality_shock_share: float = 0.3  # share of items whose quality jumps at a shock
    quality_shock_scale: float = 1.5  # std of the jump (logit units)

    # --- recall ------------------------------------------------------------------------------
    relevance_share: float = 0.6  # share of candidates picked by (noisy) relevance
    recall_pool_factor: int = 4  # relevance candidates are the best of this many x random items
    recall_noise: float = 1.0  # noise on the recall stage's relevance score

    # --- gradual drift -----------------------------------------------------------------------
    user_drift_timescale: float = math.inf  # OU timescale (ticks) of each user's taste; inf = none
    trend_scale: float = 0.0  # std of the slowly moving topic trend
    trend_timescale: float = 20_000.0  # OU timescale of the topic trend (ticks)
    population_drift_scale: float = 0.0  # std of a population-wide taste offset
    population_drift_timescale: float = 20_000.0

    # --- abrupt drift ------------------------------------------------------------------------
    abrupt_times: tuple[int, ...] = ()  # ticks at which an abrupt shift fires
    abrupt_user_share: float = 0.0  # share of users whose taste is redrawn at a shift
    abrupt_topic_reshuffle: bool = False  # reshuffle topic popularity at a shift

    # --- periodic drift ----------------------------------------------------------------------
    periodic_amplitude: float = 0.0  # amplitude of the daily topic-trend cycle (logit units)
    period: int = 10_000  # ticks per simulated day

    # --- catalog churn -----------------------------------------------------------------------
    churn_interval: int = 0  # ticks between churn events; 0 = no churn
    churn_fraction: float = 0.0  # share of the oldest items replaced by cold new ones per event
    freshness_scale: float = 5_000.0  # ticks over which an item's freshness feature decays

    # --- consumption feedback ----------------------------------------------------------------
    consumption_rate: float = 0.0  # a click pulls u toward v by this fraction
    boredom_gain: float = 0.0  # boredom added to a topic per click on it (logit units)
    boredom_half_life: float = 2_000.0  # ticks
    history_half_life: float = 5_000.0  # ticks, for the recent-click topic histogram feature

    # --- recall shift ------------------------------------------------------------------------
    recall_shift_times: tuple[int, ...] = ()
    recall_shift_share: float = 0.3  # relevance share after a recall shift
    recall_shift_topic_bias: float = 1.5  # std of the topic bias the recall stage picks up

    # --- episode -----------------------------------------------------------------------------
    max_steps: int = 1000  # steps per episode (truncation); one step = B requests
    scenario: str = "custom"  # name of the bundle this config came from (informational)

    # --- calibration (envs/calibration.py) ----------------------------------------------------
    calibration: str | None = None  # fitted .npz (`driftrank calibrate`); sizes follow the file
    calibration_digest: str | None = None  # SHA-256 of that file, read from it (cache keys)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.calibration is not None:  # sizes, absolute path and digest come from the file
            for name, value in calibrated_settings(self).items():
                object.__setattr__(self, name, value)
        elif self.calibration_digest is not None:
            raise ValueError(f"bad world config: calibration_digest={self.calibration_digest!r}"
                             " without a calibration file; leave it out (it is read from the "
                             "file calibration= names)")
        validate(self)

    # ---- derived sizes ----
    @property
    def user_feature_dim(self) -> int:
        """Fu: one obs_dim profile block per half-life + recent-click topic histogram + 3
        behaviour counters (log visits, log clicks, satisfaction)."""
        return self.obs_dim * len(self.profile_half_lives) + self.n_topics + 3

    @property
    def item_feature_dim(self) -> int:
        """Fi: topic one-hot + noisy latent projection + (log impressions, CTR, freshness)."""
        return self.n_topics + self.obs_dim + 3

    @property
    def context_dim(self) -> int:
        """C: time of day (sin, cos), user activity, log gap since the user's last visit."""
        return 4

    @property
    def n_relevance(self) -> int:
        return int(round(self.relevance_share * self.n_candidates))

    def replace(self, **overrides) -> WorldConfig:
        """A copy with ``overrides``; unknown keys raise a ``ValueError`` naming them."""
        if "calibration" in overrides:  # another file (or none): its digest is read afresh
            overrides.setdefault("calibration_digest", None)
        return dataclasses.replace(self, **_checked(overrides))

    def without_events(self) -> WorldConfig:
        """The pre-drift world: same entities and ongoing processes, no discrete events.

        Offline logs are generated from this world, as a production system's logs predate the
        shifts the online phase is about to meet.
        """
        return dataclasses.replace(self, abrupt_times=(), recall_shift_times=(),
                                   quality_shock_times=())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra", None)
        if d.get("calibration") is None:  # drawn worlds keep the ids and cache keys they had
            d.pop("calibration", None)
            d.pop("calibration_digest", None)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


FIELD_NAMES = {f.name for f in dataclasses.fields(WorldConfig)}
TIME_TUPLES = ("abrupt_times", "recall_shift_times", "quality_shock_times")
USER_FEATURES = ("history", "taste")
CONVERSION_DELAYS = ("realistic", "exponential")


def _checked(overrides: dict) -> dict:
    unknown = sorted(set(overrides) - FIELD_NAMES)
    if unknown:
        raise ValueError(
            f"unknown world setting(s) {unknown}; valid settings are: {sorted(FIELD_NAMES)}"
        )
    out = dict(overrides)
    for key in TIME_TUPLES:
        if key in out and not isinstance(out[key], tuple):
            out[key] = tuple(int(t) for t in out[key])
    if "profile_half_lives" in out and not isinstance(out["profile_half_lives"], tuple):
        out["profile_half_lives"] = tuple(float(h) for h in out["profile_half_lives"])
    return out


def validate(c: WorldConfig) -> None:
    """Raise ``ValueError`` naming the first bad setting and what would be valid."""

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ValueError(f"bad world config: {msg}")

    need(isinstance(c.world_seed, int) and c.world_seed >= 0,
         f"world_seed={c.world_seed!r} must be a non-negative integer")
    for name in ("n_items", "n_users", "latent_dim", "n_topics", "n_candidates", "slate_size",
                 "obs_dim", "recall_pool_factor", "period", "max_steps"):
        value = getattr(c, name)
        need(isinstance(value, int) and value >= 1, f"{name}={value!r} must be an integer >= 1")
    need(c.slate_size <= c.n_candidates,
         f"slate_size K={c.slate_size} exceeds n_candidates N={c.n_candidates}; need K <= N")
    need(c.n_candidates <= c.n_items,
         f"n_candidates N={c.n_candidates} exceeds n_items M={c.n_items}; need N <= M")
    need(c.n_topics <= c.n_items, f"n_topics={c.n_topics} exceeds n_items={c.n_items}")
    for name in ("feature_noise", "affinity_scale", "quality_std", "topic_pop_scale",
                 "position_bias", "contrast", "conversion_delay_mean", "conversion_weight",
                 "recall_noise", "trend_scale", "population_drift_scale", "periodic_amplitude",
                 "consumption_rate", "boredom_gain", "churn_fraction", "abrupt_user_share",
                 "recall_shift_topic_bias", "conversion_gain", "return_sensitivity",
                 "satisfaction_reference", "join_rate", "quality_drift_scale",
                 "quality_shock_scale"):
        value = getattr(c, name)
        need(isinstance(value, int | float) and value >= 0 and math.isfinite(value),
             f"{name}={value!r} must be a finite number >= 0 (negative rates are not allowed)")
    for name in ("user_drift_timescale", "trend_timescale", "population_drift_timescale",
                 "boredom_half_life", "history_half_life", "freshness_scale",
                 "quality_drift_timescale", "ticks_per_hour", "conversion_window_hours"):
        value = getattr(c, name)
        need(isinstance(value, int | float) and value > 0, f"{name}={value!r} must be > 0")
    for name in ("repeat_penalty", "relevance_share", "cascade_stop", "churn_fraction",
                 "abrupt_user_share", "recall_shift_share", "contrast", "join_rate",
                 "satisfaction_memory", "initial_active_share", "quality_shock_share"):
        value = getattr(c, name)
        need(0.0 <= value <= 1.0, f"{name}={value!r} must lie in [0, 1]")
    need(c.satisfaction_memory > 0, "satisfaction_memory=0 must lie in (0, 1]")
    need(c.initial_active_share > 0, "initial_active_share=0 must lie in (0, 1]")
    need(c.user_features in USER_FEATURES,
         f"user_features={c.user_features!r} must be one of {USER_FEATURES}")
    need(c.conversion_delay in CONVERSION_DELAYS,
         f"conversion_delay={c.conversion_delay!r} must be one of {CONVERSION_DELAYS}")
    need(isinstance(c.profile_half_lives, tuple) and 1 <= len(c.profile_half_lives) <= 4
         and all(isinstance(h, int | float) and h > 0 for h in c.profile_half_lives),
         f"profile_half_lives={c.profile_half_lives!r} must be 1 to 4 half-lives > 0 "
         "(ticks; inf = lifetime average)")
    for name in ("stats_refresh", "click_delay", "leave_after", "warmup_ticks"):
        value = getattr(c, name)
        need(isinstance(value, int) and value >= 0,
             f"{name}={value!r} must be an integer >= 0 (0 disables it)")
    need(c.conversion_delay_mean >= 1, "conversion_delay_mean must be >= 1 tick")
    need(isinstance(c.churn_interval, int) and c.churn_interval >= 0,
         f"churn_interval={c.churn_interval!r} must be an integer >= 0 (0 disables churn)")
    for name in TIME_TUPLES:
        times = getattr(c, name)
        need(all(int(t) == t and t >= 0 for t in times),
             f"{name}={times!r} must be non-negative integer ticks")
    pool = c.n_relevance * c.recall_pool_factor + (c.n_candidates - c.n_relevance)
    need(pool <= c.n_items,
         f"recall needs {pool} distinct items per request (relevance_share * N * "
         f"recall_pool_factor + random share) but n_items={c.n_items}; lower "
         f"recall_pool_factor or raise n_items")
