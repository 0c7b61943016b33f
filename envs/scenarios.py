"""Named scenarios: bundles of drift settings on top of :class:`WorldConfig` defaults.

Every scenario runs the v2 world (behaviour-derived user profiles, item statistics from a batch
job every 2,000 ticks, realistic conversion delays). The first six are the original bundles,
re-tuned so that each drifting one has adaptation headroom (oracle minus stale-oracle; measured
figures in the README); the last four isolate one mechanism each.

=====================  ====================================================================
name                   what drifts
=====================  ====================================================================
``stationary``         nothing: tastes, topics and catalog are fixed (the control)
``gradual``            every user's taste follows an Ornstein-Uhlenbeck walk; topic trends and
                       a population-wide taste offset move slowly
``abrupt-shift``       at ticks 20,000 and 60,000 topic popularity is reshuffled and 80% of
                       users switch to a new taste
``periodic``           a daily cycle (10,000 ticks) of topic trends
``churn``              every 1,000 ticks the oldest 3% of items retire and cold new items
                       arrive with unseen ids and no statistics
``mixed``              all of the above at milder rates, plus hidden item-quality drift,
                       consumption feedback, cascade browsing, a recall shift and returns that
                       depend on satisfaction (users leave after bad runs, new users join)
``taste-shift``        only user tastes: 80% of users switch at 20,000 and 60,000; their
                       behaviour profiles catch up only as they click
``quality-drift``      only hidden item quality: a random walk plus a shock at 20,000 that
                       moves 30% of items; features stay fixed, counters lag (batch job)
``cold-churn``         only newcomers: items churn, new users join (30% of slots start free),
                       users leave after 3 visits without a click, returns follow satisfaction
``delayed-feedback``   a taste shift at 20,000 whose labels arrive late: clicks after 2,000
                       ticks, conversions on the realistic delay distribution
=====================  ====================================================================

Every value can be overridden: ``make_config("abrupt-shift", n_users=500, abrupt_times=(300,))``.
"""

from __future__ import annotations

from .config import WorldConfig, _checked

SCENARIOS: dict[str, dict] = {
    "stationary": {},
    "gradual": dict(
        user_drift_timescale=30_000.0,
        trend_scale=0.6,
        trend_timescale=15_000.0,
        population_drift_scale=0.5,
        population_drift_timescale=30_000.0,
    ),
    "abrupt-shift": dict(
        abrupt_times=(20_000, 60_000),
        abrupt_user_share=0.8,
        abrupt_topic_reshuffle=True,
        topic_pop_scale=1.0,
    ),
    "periodic": dict(periodic_amplitude=1.0, period=10_000),
    "churn": dict(churn_interval=1_000, churn_fraction=0.03),
    "mixed": dict(
        user_drift_timescale=60_000.0,
        trend_scale=0.4,
        population_drift_scale=0.3,
        abrupt_times=(30_000,),
        abrupt_user_share=0.4,
        abrupt_topic_reshuffle=True,
        periodic_amplitude=0.5,
        churn_interval=2_000,
        churn_fraction=0.02,
        consumption_rate=0.02,
        boredom_gain=0.3,
        cascade_stop=0.3,
        recall_shift_times=(45_000,),
        quality_drift_scale=0.5,
        return_sensitivity=1.0,
        leave_after=4,
        join_rate=0.02,
        initial_active_share=0.9,
    ),
    "taste-shift": dict(abrupt_times=(20_000, 60_000), abrupt_user_share=0.8),
    "quality-drift": dict(
        quality_drift_scale=1.0,
        quality_drift_timescale=20_000.0,
        quality_shock_times=(20_000,),
        quality_shock_share=0.3,
        quality_shock_scale=1.5,
    ),
    "cold-churn": dict(
        churn_interval=1_000,
        churn_fraction=0.03,
        join_rate=0.05,
        initial_active_share=0.7,
        leave_after=3,
        return_sensitivity=1.0,
    ),
    "delayed-feedback": dict(
        abrupt_times=(20_000,),
        abrupt_user_share=0.6,
        click_delay=2_000,
    ),
}

DESCRIPTIONS: dict[str, str] = {
    "stationary": "no drift at all (the control)",
    "gradual": "tastes random-walk; topic trends and a population offset move slowly",
    "abrupt-shift": "topic popularity reshuffled and 80% of users switch taste at 20k and 60k",
    "periodic": "daily cycle of topic trends (period 10k requests)",
    "churn": "oldest 3% of items replaced by cold ones every 1k requests",
    "mixed": "everything at milder rates + hidden quality drift, consumption feedback, "
             "cascade, recall shift, satisfaction-driven returns, leaving and joining",
    "taste-shift": "only tastes: 80% of users switch at 20k and 60k; profiles lag behind",
    "quality-drift": "only hidden item quality: random walk + a shock to 30% of items at 20k",
    "cold-churn": "only newcomers: churned-in items, joining users, leaving after bad runs",
    "delayed-feedback": "taste shift at 20k with clicks reported 2k ticks late and "
                        "realistically delayed conversions",
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def make_config(scenario: str = "stationary", **overrides) -> WorldConfig:
    """The config of a named scenario with keyword overrides.

    Raises ``ValueError`` for an unknown scenario (listing the known ones) or setting.
    """
    if isinstance(scenario, WorldConfig):
        return scenario.replace(**overrides) if overrides else scenario
    if scenario not in SCENARIOS:
        raise ValueError(
            f"unknown scenario {scenario!r}; choose one of {scenario_names()} "
            "(or pass keyword settings to customise one)"
        )
    settings = {**SCENARIOS[scenario], **_checked(overrides), "scenario": scenario}
    return WorldConfig(**settings)
