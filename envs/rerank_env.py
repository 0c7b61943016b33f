"""``RerankEnv``: one request per step, users whose tastes drift."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .actions import validate_slates
from .config import WorldConfig
from .scenarios import make_config
from .spaces import action_space, observation_space
from .world import World


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
    | `user`          | `Box(-10, 10, (Fu,))`    | noisy projection of the user's taste, topic |
    |                 |                          | histogram of recent clicks, activity        |
    | `candidates`    | `Box(-10, 10, (N, Fi))`  | topic one-hot, noisy item latent, log       |
    |                 |                          | impressions, smoothed CTR, freshness        |
    | `candidate_ids` | `Box(0, 2**62, (N,))`    | catalog ids (new ids appear with churn)     |
    | `context`       | `Box(-10, 10, (4,))`     | time of day (sin, cos), activity, log gap   |
    |                 |                          | since the user's previous visit             |
    | `user_id`       | `Box(0, U - 1, ())`      | the requesting user                         |

    Features are float32, ids int64.

    With defaults Fu = obs_dim + T + 1 = 29 and Fi = T + obs_dim + 3 = 31. Agents see only noisy
    partial features: the true latent vectors never leave the world.

    ## Rewards

    Clicks on the slate plus `conversion_weight` times the conversions that land at this step.
    A click at position k happens with probability

        examination(k) x attraction(user, item) x context(k, slate)

    where examination falls with position (position bias, scaled per user), attraction is a
    logistic function of the true affinity, item quality, topic popularity and trend, minus
    boredom, and context penalises repeating a topic shown higher up and rewards contrast with
    neighbours. With `cascade_stop > 0` a click ends browsing with that probability. A click
    converts into a purchase with its own probability, reported only after a random
    (exponential) delay: it lands in `info["conversions"]` of a later step, exactly once.

    ## Starting State

    `reset(seed=s)` builds the world from `s`: users, items and topic popularity from the world
    stream; arrivals, recall, clicks and drift each from their own stream. The same seed gives
    the same trajectory, and two agents on the same seed meet the same users, candidates and
    drift.

    ## Episode End

    `terminated` is always False (the stream of requests never ends by itself). `truncated`
    becomes True after `max_steps` steps.

    ## Information

    `info` holds `request_id`, `clicks` (K,), `empty_slots`, `served_item_ids` (K,),
    `conversions` (the delayed purchases landing now), `drift_events` (events that fired before
    the returned observation, e.g. `{"tick": 20000, "kind": "abrupt"}`) and `truth`:
    `click_probs` (K,), `conversion_probs` (K,), `expected_reward`, `reference_slate` (greedy on
    true probabilities) and `reference_reward`, so runs can report regret. Truth is for the
    runner and the oracle only: agents must not read it.

    ## Drift

    Composable and seeded (see `driftrank.envs.scenarios`): gradual (each taste follows an
    Ornstein-Uhlenbeck walk; topic trend and a population offset move), abrupt (at given ticks
    topic popularity is reshuffled and a share of users switch taste), periodic (daily cycle of
    topic trends), catalog churn (cold items replace the oldest), consumption feedback (a click
    pulls the user toward the item and builds boredom with its topic) and recall shift (the
    candidate mix changes). Named bundles: `stationary`, `gradual`, `abrupt-shift`,
    `periodic`, `churn`, `mixed`.

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

    - v0: initial version.
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
        self.observation_space = observation_space(self.config)
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

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        c = self.config
        slate = validate_slates(action, 0, c.n_candidates, c.slate_size, self.strict)
        shown_topics = self.world._req_topics[0, slate[0]].copy()
        out = self.world.serve(slate, with_truth=self.with_truth)
        self._steps += 1
        reward = float(out.pop("reward")[0])
        info = {
            "request_id": int(out["request_id"][0]),
            "clicks": out["clicks"][0],
            "empty_slots": int(out["empty_slots"][0]),
            "served_item_ids": out["served_item_ids"][0],
            "conversions": out["conversions"],
            "drift_events": out["drift_events"],
        }
        if "truth" in out:
            info["truth"] = {
                key: (value[0] if key != "expected_reward" and key != "reference_reward"
                      else float(value[0]))
                for key, value in out["truth"].items()
            }
        self._last = (slate[0], shown_topics, info)
        truncated = self._steps >= c.max_steps
        return _single(self.world.observation()), reward, False, truncated, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return "(no slate served yet)\n"
        slate, topics, info = self._last
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
