"""``RerankEnv``: one request per step, users whose tastes drift."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .actions import validate_slates
from .config import WorldConfig
from .drift import schedule_frame
from .scenarios import make_config
from .spaces import action_space, observation_space
from .world import LazyDict, Truth, World


class RerankEnv(gym.Env):
    """
    ## Description

    A user arrives; an upstream recall stage hands over N candidate items; the agent orders K of
    them into a slate; the user clicks (now) and sometimes buys (later). The user's tastes,
    the topics in fashion and the catalog drift while the episode runs, so a ranker trained on
    yesterday's logs slowly (or suddenly) goes stale. This env is the B = 1 view of
    :class:`~driftrank.envs.vector_env.VectorRerankEnv`, which serves many requests per step
    from the same world and is the fast path for experiments.

    ## Action Space

    `MultiDiscrete([N] * K)`: slot k of the slate shows candidate `action[k]`. Indices must be
    integers in `[0, N)`. A repeated index leaves its slot empty (nothing shown, no click; the
    number of empty slots is in `info["empty_slots"]`) so that `action_space.sample()` is
    always legal; with `strict=True` a repeat raises `ValueError`. A wrong shape, an
    out-of-range or a non-integer action raises `ValueError` naming the fault, and the world is
    left unchanged.

    ## Observation Space

    A `Dict` (all bounds finite):

    | key             | space                    | content                                     |
    |-----------------|--------------------------|---------------------------------------------|
    | `user`          | `Box(-10, 10, (Fu,))`    | behaviour profile: per half-life, the       |
    |                 |                          | decayed mean of the observed vectors of the |
    |                 |                          | items the user clicked; topic histogram of  |
    |                 |                          | recent clicks; log visits, log clicks,      |
    |                 |                          | satisfaction (clicks per visit, decayed)    |
    | `candidates`    | `Box(-10, 10, (N, Fi))`  | topic one-hot, noisy item latent, log       |
    |                 |                          | impressions and smoothed CTR (published by  |
    |                 |                          | a batch job every `stats_refresh` ticks),   |
    |                 |                          | freshness                                   |
    | `candidate_ids` | `Box(0, max id, (N,))`   | catalog ids (new ids appear with churn)     |
    | `context`       | `Box(-10, 10, (4,))`     | time of day (sin, cos), activity, log gap   |
    |                 |                          | since the user's previous visit             |
    | `user_id`       | `Box(0, max id, ())`     | the requesting user (joiners get new ids)   |

    Features are float32, ids int64. Id bounds are what the episode can create: U - 1 and
    M - 1 without joining and churn, more with them.

    With defaults Fu = obs_dim x len(profile_half_lives) + T + 3 = <FU> and
    Fi = T + obs_dim + 3 = <FI>. Agents see only behaviour and fixed noisy item features: the
    true latent vectors, qualities and tastes never leave the world. With
    `user_features="taste"` the first profile block is a noisy projection of the current taste
    instead (the v1 control world, in which features reveal drift at once).

    ## Rewards

    Clicks on the slate plus `conversion_weight` times the conversions that land at this step.
    A click at position k happens with probability

        examination(k) x attraction(user, item) x context(k, slate)

    where examination falls with position (position bias, scaled per user), attraction is a
    logistic function of the true affinity, item quality, topic popularity and trend, minus
    boredom, and context penalises repeating a topic shown higher up and rewards contrast with
    neighbours. With `cascade_stop > 0` a click ends browsing with that probability. A click
    converts into a purchase with its own probability, reported only after a random delay
    (realistic by default: about 35% within an hour, 50% within a day, at `ticks_per_hour`):
    it lands in `info["conversions"]` of a later step, exactly once. With `click_delay > 0`
    clicks are reported late too (`info["click_reports"]`), and the reward of a step counts
    the labels reported in it.

    ## Starting State

    `reset(seed=s)` builds the world from `s`: users, items and topic popularity from the world
    stream; arrivals, recall, clicks and drift each from their own stream. The same seed gives
    the same trajectory, and two agents on the same seed meet the same users, candidates and
    drift.

    ## Episode End

    `terminated` is always False (the stream of requests never ends by itself). `truncated`
    becomes True after `max_steps` steps.

    ## Information

    `info` holds `request_id`, `clicks` (K,) reported now on this slate (zeros when
    `click_delay > 0`), `click_reports` (clicks reported now, delayed ones included),
    `empty_slots`, `served_item_ids` (K,), `conversions` (the delayed purchases landing now),
    `return_gap` (ticks since the user's previous visit, -1 on a first visit), `active_users`,
    `joined`, `drift_events` (labelled events that fired before the returned observation,
    e.g. `{"tick": 20000, "kind": "abrupt", "width": 0.0, "magnitude": 1.0, "share": 0.8,
    "mechanism": "user taste + topic popularity"}`) and `truth`: `click_probs` (K,),
    `conversion_probs` (K,), `expected_reward`, realised `clicks`, `reference_slate` (greedy
    on true probabilities) and `reference_reward`, computed only when read. Truth is for the
    runner and the oracles only: agents must not read it. `env.unwrapped.drift_schedule` is
    the whole labelled schedule as a DataFrame.

    ## Drift

    Composable and seeded (see `driftrank.envs.scenarios`): gradual (each taste follows an
    Ornstein-Uhlenbeck walk; topic trend and a population offset move), abrupt (at given ticks
    topic popularity is reshuffled and a share of users switch taste), periodic (daily cycle of
    topic trends), catalog churn (cold items replace the oldest), consumption feedback (a click
    pulls the user toward the item and builds boredom with its topic) and recall shift (the
    candidate mix changes), hidden item-quality drift (random walk and shocks), and returns
    that depend on satisfaction (users leave after bad runs, new users join). Named bundles:
    <SCENARIOS>.

    ## Arguments

    ```python
    import gymnasium as gym
    import driftrank.envs
    env = gym.make("driftrank/Rerank-v0", scenario="abrupt-shift", n_users=2000, max_steps=500)
    ```

    - `scenario`: a named bundle or a `WorldConfig`; default `"stationary"`.
    - `strict`: raise on repeated indices instead of leaving the slot empty; default False.
    - `render_mode`: `"ansi"` returns the last slate as text.
    - any `WorldConfig` field as a keyword (`n_items`, `n_candidates`, `slate_size`,
      `cascade_stop`, `abrupt_times`, ...). Bad values raise `ValueError` naming the setting.

    ## Version History

    - v0: initial version; world v2 (behaviour features, lagged statistics, delayed labels,
      satisfaction-driven returns, labelled drift) keeps the id and the keys of v1.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario: str | WorldConfig = "stationary",
        strict: bool = False,
        render_mode: str | None = None,
        with_truth: bool = True,
        **world_overrides: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r}; supported: {self.metadata['render_modes']}")
        self.config = make_config(scenario, **world_overrides)
        self.strict = bool(strict)
        self.with_truth = bool(with_truth)
        self.render_mode = render_mode
        self.observation_space = observation_space(self.config, self.config.max_steps + 1)
        self.action_space = action_space(self.config)
        self.world: World | None = None
        self._steps = 0
        self._last: tuple[np.ndarray, dict] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        root = seed if seed is not None else int(self.np_random.integers(2**63 - 1))
        self.world = World(self.config, 1, root)
        self._steps = 0
        self._last = None
        info = {"drift_events": [e.as_dict() for e in self.world.events]}
        return _single(self.world.observation()), info

    @property
    def drift_schedule(self):
        """Every labelled drift row of this episode (DataFrame: kind, onset, width, magnitude,
        share, mechanism)."""
        return schedule_frame(self.config, self.config.max_steps)

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        c = self.config
        slate = validate_slates(action, 0, c.n_candidates, c.slate_size, self.strict)
        topics = self.world._req_topics[0]  # for render (the next request gets new arrays)
        out = self.world.serve(slate, with_truth=self.with_truth)
        self._steps += 1
        reward = float(out.pop("reward")[0])
        info = {
            "request_id": int(out["request_id"][0]),
            "clicks": out["clicks"][0],
            "click_reports": out["click_reports"],
            "empty_slots": int(out["empty_slots"][0]),
            "served_item_ids": out["served_item_ids"][0],
            "conversions": out["conversions"],
            "return_gap": int(out["return_gap"][0]),
            "active_users": out["active_users"],
            "joined": out["joined"],
            "drift_events": out["drift_events"],
        }
        if "truth" in out:
            info["truth"] = _RowTruth(out["truth"])
        self._last = (slate[0], topics, info)
        truncated = self._steps >= c.max_steps
        return _single(self.world.observation()), reward, False, truncated, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return "(no slate served yet)\n"
        slate, topics, info = self._last
        topics = topics[slate]
        lines = [f"request {info['request_id']}  reward so far in step: clicks="
                 f"{int(info['clicks'].sum())}"]
        lines.append(" pos  cand  item_id  topic  click")
        for pos, cand in enumerate(slate):
            item = info["served_item_ids"][pos]
            shown = item >= 0
            lines.append(
                f" {pos:>3}  {cand:>4}  {item if shown else '-':>7}  "
                f"{topics[pos] if shown else '-':>5}  {'*' if info['clicks'][pos] else ''}")
        return "\n".join(lines) + "\n"


def _single(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value[0, ...] for key, value in obs.items()}


class _RowTruth(LazyDict):
    """Row 0 of a batch :class:`~driftrank.envs.world.Truth`, still computed only when read."""

    GROUPS = Truth.GROUPS

    def __init__(self, truth: Truth):
        super().__init__()
        self._truth = truth

    def _compute(self, group: tuple[str, ...]) -> dict:
        return {key: _row(key, self._truth[key]) for key in group}


def _row(key: str, value):
    return float(value[0]) if key in ("expected_reward", "reference_reward") else value[0]


def _document_sizes() -> None:
    """Fill the docstring's feature sizes and scenario list from the code, never by hand."""
    from .scenarios import scenario_names

    c = WorldConfig()
    RerankEnv.__doc__ = (RerankEnv.__doc__.replace("<FU>", str(c.user_feature_dim))
                         .replace("<FI>", str(c.item_feature_dim))
                         .replace("<SCENARIOS>", ", ".join(f"`{n}`" for n in scenario_names())))


_document_sizes()
