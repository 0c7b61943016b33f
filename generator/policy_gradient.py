"""REINFORCE of the generator against a frozen evaluator (the reward model).

For a batch of logged requests: sample slates from the policy, ask the evaluator for the
per-position click probabilities of each sampled slate (the reward), and push up the
log-probability of every pick in proportion to its reward-to-go minus a baseline. The baseline
is the evaluator's reward-to-go of the *logged* (behaviour) slate of the same request: the
policy is rewarded for beating what was served, which removes the per-request difficulty from
the gradient's variance without a learned critic.

The evaluator is only a model of the world, and policy gradient finds its mistakes: when the
logs are small, the evaluator's score of the sampled slates keeps rising while their true
reward falls below the imitation warm start (measured: 2.17 -> 1.78 on a 6k-request world).
``imitation_coef`` anchors the policy by adding the imitation loss (teacher-forced NLL of the
logs' best-clicked orders, see :mod:`.imitation`) on the same batch, a behaviour-cloning
regulariser in the spirit of a trust region that costs one extra teacher-forced decode.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import torch

from ..evaluator.batch import check_logged, gather_slate
from .imitation import imitation_targets
from .model import SlateGenerator
from .tensors import request_tensors


class SlateScorer(Protocol):
    """What the trainer needs from an evaluator: per-position click probabilities (B, K)."""

    def __call__(self, user, items, item_ids) -> torch.Tensor: ...


def reward_to_go(r: torch.Tensor) -> torch.Tensor:
    """G[:, k] = sum of r[:, k:] (rewards of this position and the ones below it)."""
    return r.flip(1).cumsum(1).flip(1)


@torch.no_grad()
def _rewards(evaluator, user, cand, ids, slates, weights) -> torch.Tensor:
    items, item_ids = gather_slate(cand, ids, slates)
    r = evaluator(user, items, item_ids)
    return r * weights if weights is not None else r


def train_policy_gradient(
    model: SlateGenerator,
    evaluator: SlateScorer,
    data: Mapping,
    steps: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    *,
    samples_per_request: int = 4,
    weights=None,
    entropy_coef: float = 0.0,
    imitation_coef: float = 0.0,
    on_step=None,
) -> dict:
    """Train ``model`` in place for ``steps`` updates; return metrics.

    ``samples_per_request`` slates are sampled per request (one batched decode). ``weights``
    (K,) optionally weight the evaluator's per-position rewards. ``imitation_coef`` > 0 adds
    that multiple of the imitation loss (needs ``clicks`` in ``data``). The evaluator is put in
    eval mode and only read (no gradient reaches it); its mode is restored afterwards.

    Returns ``{"reward": [mean sampled slate reward per step], "behaviour_reward": mean
    evaluator reward of the logged slates, "final_reward", "seconds"}``.
    """
    if steps < 0 or batch_size < 1 or lr <= 0 or samples_per_request < 1 or imitation_coef < 0:
        raise ValueError(
            f"bad training arguments: steps={steps} batch_size={batch_size} lr={lr} "
            f"samples_per_request={samples_per_request} imitation_coef={imitation_coef}"
        )
    t0 = time.perf_counter()
    n = check_logged(data, ("user", "candidates", "candidate_ids", "slates"))
    t = request_tensors(data)
    target = None
    if imitation_coef > 0:
        if "clicks" not in data:
            raise ValueError("imitation_coef > 0 needs 'clicks' in the logged batch (the "
                             "imitation targets are the logs' best-clicked orders)")
        target = torch.as_tensor(imitation_targets(data["slates"], data["clicks"]))
    w = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    ev_training = getattr(evaluator, "training", False)
    if hasattr(evaluator, "eval"):
        evaluator.eval()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    p = samples_per_request
    rewards, behaviour = [], []
    model.train()
    try:
        for _ in range(steps):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            user, cand, ids = t["user"][idx], t["candidates"][idx], t["candidate_ids"][idx]
            logged = t["slates"][idx]
            base = reward_to_go(_rewards(evaluator, user, cand, ids, logged, w))  # (B, K)
            enc, h0 = model.encode(user, cand, ids)
            enc_p, h0_p = enc.repeat_interleave(p, 0), h0.repeat_interleave(p, 0)
            slates, logp = model.decode(enc_p, h0_p, greedy=False, generator=gen)
            k = slates.shape[1]
            r = _rewards(
                evaluator,
                user.repeat_interleave(p, 0),
                cand.repeat_interleave(p, 0),
                ids.repeat_interleave(p, 0),
                slates,
                w,
            )
            adv = reward_to_go(r) - base[:, :k].repeat_interleave(p, 0)
            loss = -(adv * logp).sum(1).mean()
            if target is not None:
                _, logp_target = model.decode(enc, h0, slates=target[idx])
                loss = loss - imitation_coef * logp_target.mean()
            if entropy_coef:
                loss = loss + entropy_coef * logp.sum(1).mean()  # sampled-entropy surrogate
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            rewards.append(float(r.sum(1).mean()))
            behaviour.append(float(base[:, 0].mean()))
            if on_step is not None:  # progress reporting (a bar's update)
                on_step()
    finally:
        model.eval()
        if hasattr(evaluator, "train"):
            evaluator.train(ev_training)
    return {
        "reward": rewards,
        "behaviour_reward": float(np.mean(behaviour)) if behaviour else float("nan"),
        "final_reward": rewards[-1] if rewards else float("nan"),
        "seconds": time.perf_counter() - t0,
    }
