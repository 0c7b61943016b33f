"""Named scenarios: bundles of drift settings on top of :class:`WorldConfig` defaults.

=================  ==========================================================================
name               what drifts
=================  ==========================================================================
``stationary``     nothing: tastes, topics and catalog are fixed (the control)
``gradual``        every user's taste follows an Ornstein-Uhlenbeck walk; topic trends and a
                   population-wide taste offset move slowly
``abrupt-shift``   at tick 20,000 (and 60,000) topic popularity is reshuffled and 80% of users
                   switch to a new taste
``periodic``       a daily cycle (10,000 ticks) of topic trends
``churn``          every 1,000 ticks the oldest 3% of items retire and cold new items arrive
``mixed``          all of the above at milder rates, plus consumption feedback (clicks pull taste
                   toward the item, boredom builds), cascade browsing and a recall shift
=================  ==========================================================================

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
    ),
}

DESCRIPTIONS: dict[str, str] = {
    "stationary": "no drift at all (the control)",
    "gradual": "tastes random-walk; topic trends and a population offset move slowly",
    "abrupt-shift": "topic popularity reshuffled and 80% of users switch taste at 20k and 60k",
    "periodic": "daily cycle of topic trends (period 10k requests)",
    "churn": "oldest 3% of items replaced by cold ones every 1k requests",
    "mixed": "everything at milder rates + consumption feedback, cascade, recall shift",
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
