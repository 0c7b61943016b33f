"""``VectorRerankEnv``: B concurrent requests per step from one shared world.

This is the fast path. Each row of the batch is one request; all rows share one world (the
same users, catalog and drift), computed together in numpy batch form. It is registered as the
``vector_entry_point`` of ``driftrank/Rerank-v0``::

    envs = gymnasium.make_vec("driftrank/Rerank-v0", num_envs=256,
                              vectorization_mode="vector_entry_point", scenario="gradual")

Spaces, reward, ``info`` and drift are those of :class:`~driftrank.envs.rerank_env.RerankEnv`
with a leading batch dimension: the observation is a ``Dict`` of arrays (B, ...), the action a
(B, K) int array, the reward (B,) (clicks of the row's slate + weighted conversions landing in
that row). All rows truncate together after ``max_steps`` steps; the following ``step`` resets
the world (Gymnasium's next-step autoreset) and returns the first observation of the new episode
with zero reward.

``info`` (one dict for the batch): ``request_id`` (B,), ``clicks`` (B, K) reported now on these
slates (zeros when ``click_delay > 0``), ``click_reports`` (a
:class:`~driftrank.envs.types.ClickReports` of the clicks reported now, delayed ones included),
``empty_slots`` (B,), ``served_item_ids`` (B, K), ``conversions`` (a
:class:`~driftrank.envs.types.Conversions` of the conversions landing now), ``return_gap`` (B,)
(-1 on a first visit), ``active_users``, ``joined``, ``drift_events`` (labelled dicts: tick,
kind, width, magnitude, share, mechanism) and ``truth`` (``click_probs``, ``conversion_probs``,
``expected_reward``, realised ``clicks``, ``reference_slate``, ``reference_reward``; computed
when read) — truth is for the runner's metrics and the oracles; agents must not read it.
``env.drift_schedule`` is the labelled schedule of the episode as a DataFrame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .actions import validate_slates
from .config import WorldConfig
from .drift import schedule_frame
from .scenarios import make_config
from .spaces import action_space, observation_space
from .world import World


class VectorRerankEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 64,
        scenario: str | WorldConfig = "stationary",
        strict: bool = False,
        with_truth: bool = True,
        **world_overrides: Any,
    ):
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} must be an integer >= 1 (requests per step)")
        self.config = make_config(scenario, **world_overrides)
        self.num_envs = int(num_envs)
        self.strict = bool(strict)
        self.with_truth = bool(with_truth)
        self.single_observation_space = observation_space(
            self.config, (self.config.max_steps + 1) * self.num_envs)
        self.single_action_space = action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.world: World | None = None
        self._needs_reset = False
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        root = seed if seed is not None else int(self.np_random.integers(2**63 - 1))
        self.world = World(self.config, self.num_envs, root)
        self._needs_reset = False
        self._steps = 0
        info = {"drift_events": [e.as_dict() for e in self.world.events]}
        return self.world.observation(), info

    @property
    def drift_schedule(self):
        """Every labelled drift row of this episode (DataFrame: kind, onset, width, magnitude,
        share, mechanism)."""
        return schedule_frame(self.config, self.config.max_steps * self.num_envs)

    def step(self, actions):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        c = self.config
        slates = validate_slates(actions, self.num_envs, c.n_candidates, c.slate_size,
                                 self.strict)
        b = self.num_envs
        if self._needs_reset:
            obs, info = self.reset()
            zeros = np.zeros(b, bool)
            return obs, np.zeros(b, np.float32), zeros, zeros.copy(), info
        out = self.world.serve(slates, with_truth=self.with_truth)
        self._steps += 1
        truncated = np.full(b, self._steps >= c.max_steps)
        self._needs_reset = bool(truncated[0])
        reward = out.pop("reward")
        return self.world.observation(), reward, np.zeros(b, bool), truncated, out
