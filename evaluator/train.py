"""Fitting the evaluator on logged slates (BCE, optionally with ReLoop self-correction).

Everything random (batch order, dropout) is drawn from generators seeded by ``seed`` inside a
forked RNG, so the same model + data + seed gives identical weights and the caller's global
torch RNG is left untouched.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .batch import logged_tensors
from .losses import reloop_loss
from .metrics import auc, log_loss
from .model import ListwiseEvaluator


@torch.no_grad()
def predict_logged(
    model: ListwiseEvaluator, data: Mapping, batch_size: int = 1024
) -> np.ndarray:
    """Predicted click probabilities (R, K) of the logged slates in ``data`` (eval mode)."""
    t = logged_tensors(data)
    was_training = model.training
    model.eval()
    try:
        out = [
            model(t["user"][i : i + batch_size], t["items"][i : i + batch_size],
                  t["item_ids"][i : i + batch_size])
            for i in range(0, len(t["user"]), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, t["slates"].shape[1]), np.float32)


def evaluate_logged(model: ListwiseEvaluator, data: Mapping) -> dict[str, float]:
    """Log-loss and AUC of the model on the logged clicks of ``data``."""
    p = predict_logged(model, data)
    y = np.asarray(data["clicks"])
    return {"logloss": log_loss(y, p), "auc": auc(y, p)}


def train_evaluator(
    model: ListwiseEvaluator,
    data: Mapping,
    epochs: int = 5,
    batch_size: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    reloop_alpha: float = 0.0,
    previous: nn.Module | None = None,
    *,
    weight_decay: float = 0.0,
    valid: Mapping | None = None,
    on_epoch=None,
) -> dict:
    """Train ``model`` in place on the logged batch ``data``; return metrics.

    ``reloop_alpha`` > 0 adds ReLoop's self-correction loss against ``previous`` (the model
    deployed before this update). When ``previous`` is None, a frozen copy of ``model`` as it
    is at the start of this call plays that role: "do not get worse than you were".

    Returns ``{"loss": [per-epoch mean loss], "final_loss", "train_logloss", "train_auc",
    "n_requests", "seconds"}`` plus ``valid_logloss``/``valid_auc`` when ``valid`` is given.
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(f"bad training arguments: epochs={epochs} batch_size={batch_size} lr={lr}")
    t0 = time.perf_counter()
    t = logged_tensors(data)
    n = len(t["user"])
    if reloop_alpha > 0 and previous is None:
        previous = copy.deepcopy(model)
    if previous is not None and reloop_alpha > 0:
        previous.eval()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout masks
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total, count = 0.0, 0
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                user, items, ids = t["user"][idx], t["items"][idx], t["item_ids"][idx]
                y = t["clicks"][idx]
                y_hat = model(user, items, ids)
                y_last = None
                if reloop_alpha > 0:
                    with torch.no_grad():
                        y_last = previous(user, items, ids)
                loss = reloop_loss(y_hat, y, y_last, reloop_alpha)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            losses.append(total / max(count, 1))
            if on_epoch is not None:  # progress reporting (a bar's update)
                on_epoch()
    model.eval()
    metrics = {f"train_{k}": v for k, v in evaluate_logged(model, data).items()}
    out = {
        "loss": losses,
        "final_loss": losses[-1] if losses else float("nan"),
        **metrics,
        "n_requests": n,
        "seconds": time.perf_counter() - t0,
    }
    if valid is not None:
        out.update({f"valid_{k}": v for k, v in evaluate_logged(model, valid).items()})
    return out
