"""Pretraining diagnostics that read the world's truth (``driftrank pretrain``, tests).

Agents never read truth, so these live with the experiments: :func:`truth_metrics` is passed to
:func:`driftrank.agents.pretrained.pretrain` as its ``measure`` and its figures are stored with
the checkpoints. They say whether the offline phase produced models worth adapting: does the
evaluator order slates the way the world does, and does the generator beat the behaviour policy?
"""

from __future__ import annotations

import numpy as np
import torch

from .. import evaluator as ev
from ..agents.pretrained import PretrainConfig, model_inputs
from ..envs.config import WorldConfig
from ..envs.logs import LOG_STREAM_SALT, behaviour_slates
from ..envs.world import World

EVAL_STREAM_SALT = LOG_STREAM_SALT + 1  # held-out world requests for truth-based metrics


@torch.inference_mode()
def truth_metrics(world: WorldConfig, seed: int, evaluator, generator,
                  config: PretrainConfig, imitated=None) -> dict:
    """Metrics that need the world's truth, on held-out requests from the pre-drift world
    (a separate stream, warmed up by as many behaviour requests as the logs hold).

    - ``evaluator_spearman``: per request, the rank correlation between the evaluator's slate
      score and the true expected reward over random permutations of a behaviour slate
      (does the evaluator judge *order* the way the world does?), averaged.
    - true expected reward per request of the generator's greedy slates, of the behaviour
      policy, of random slates and of the greedy-on-truth reference; with ``imitated`` (the
      generator before policy gradient) also its reward, so what policy gradient added shows.
    """
    n = config.eval_requests
    w = World(world.without_events(), n, seed, stream_salt=EVAL_STREAM_SALT)
    rng = np.random.default_rng([seed, EVAL_STREAM_SALT])
    _warm_up(w, config, rng)
    obs = model_inputs(w.observation())
    k = world.slate_size
    behaviour = behaviour_slates(w.true_attraction(), k, config.behaviour_noise,
                                 config.behaviour_epsilon, rng)
    greedy = generator.greedy(obs["user"], obs["candidates"], obs["candidate_ids"]).numpy()
    random = np.argsort(rng.random((n, world.n_candidates)), axis=1)[:, :k]

    p = config.eval_permutations
    perms = np.stack([behaviour[np.arange(n)[:, None], np.argsort(rng.random((n, k)), 1)]
                      for _ in range(p)], axis=1)  # (n, P, K)
    flat = perms.reshape(n * p, k)
    rep = {key: np.repeat(value, p, axis=0) for key, value in obs.items()}
    rows = np.arange(n * p)[:, None]
    items, ids = rep["candidates"][rows, flat], rep["candidate_ids"][rows, flat]
    scores = evaluator.score(rep["user"], items, ids).numpy().reshape(n, p)
    truth = np.stack([w.expected_reward(perms[:, j]) for j in range(p)], axis=1)
    rhos = [ev.spearman(scores[i], truth[i]) for i in range(n)]
    out = {
        "evaluator_spearman": float(np.nanmean(rhos)),
        "generator_true_reward": float(w.expected_reward(greedy).mean()),
        "behaviour_true_reward": float(w.expected_reward(behaviour).mean()),
        "random_true_reward": float(w.expected_reward(random).mean()),
        "reference_true_reward": float(w.expected_reward(w.reference_slates()).mean()),
    }
    if imitated is not None:
        slates = imitated.greedy(obs["user"], obs["candidates"], obs["candidate_ids"]).numpy()
        out["imitation_true_reward"] = float(w.expected_reward(slates).mean())
    return out


def _warm_up(w: World, config: PretrainConfig, rng: np.random.Generator) -> None:
    """Serve as many behaviour requests as the logs hold, so that the held-out requests come
    from a world whose item statistics (impressions, CTR) look like the logs' end, not from a
    catalog nobody has seen yet (features the models rely on would be out of distribution)."""
    k = w.config.slate_size
    for _ in range(-(-config.n_requests // w.batch_size)):
        w.serve(behaviour_slates(w.true_attraction(), k, config.behaviour_noise,
                                 config.behaviour_epsilon, rng), with_truth=False)
