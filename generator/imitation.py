"""Warm start of the generator by imitating the logs' best-clicked orders.

The target order of a logged request is its served slate re-sorted by click: clicked items
first (in their logged order), then unclicked ones (in their logged order). Learning to put
what was clicked first is a better start than copying the behaviour policy verbatim, and it
needs no reward model. Loss: cross-entropy of the teacher-forced per-position log-probs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch

from ..evaluator.batch import check_logged
from .model import SlateGenerator
from .tensors import request_tensors


def imitation_targets(slates: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """Logged slates re-ordered: clicked items first, each group keeping its logged order."""
    order = np.argsort(-np.asarray(clicks), axis=1, kind="stable")
    return np.take_along_axis(np.asarray(slates), order, axis=1)


def train_imitation(
    model: SlateGenerator,
    data: Mapping,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    *,
    on_epoch=None,
) -> dict:
    """Train ``model`` in place by teacher-forced cross-entropy; return metrics.

    Returns ``{"loss": [per-epoch mean NLL per position], "final_loss", "n_requests",
    "seconds"}``. Batch order is drawn from ``seed`` only: same inputs -> same weights.
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(f"bad training arguments: epochs={epochs} batch_size={batch_size} lr={lr}")
    t0 = time.perf_counter()
    n = check_logged(data)
    k = np.shape(data["slates"])[1]
    if k > model.config.slate_size:
        raise ValueError(
            f"logged slates have {k} positions, the generator makes {model.config.slate_size}"
        )
    t = request_tensors(data)
    target = torch.as_tensor(imitation_targets(data["slates"], data["clicks"]), dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            enc, h0 = model.encode(t["user"][idx], t["candidates"][idx], t["candidate_ids"][idx])
            _, logp = model.decode(enc, h0, slates=target[idx])
            loss = -logp.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / max(n, 1))
        if on_epoch is not None:  # progress reporting (a bar's update)
            on_epoch()
    model.eval()
    return {
        "loss": losses,
        "final_loss": losses[-1] if losses else float("nan"),
        "n_requests": n,
        "seconds": time.perf_counter() - t0,
    }
