"""Training losses of the click model: BCE and ReLoop's self-correction loss.

ReLoop (Cai et al., SIGIR 2022) asks a freshly trained model to be at least as good as the
previous one on every sample: if the label is a click, the new prediction should not fall below
the old; if not, it should not rise above it. The penalty is one-sided, so the loss is

    L = alpha * L_sc + (1 - alpha) * L_ce
    L_sc = y * max(y_last - y_hat, 0) + (1 - y) * max(y_hat - y_last, 0)

with ``y_hat`` the new probabilities and ``y_last`` the previous model's (no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(y_hat: torch.Tensor, y: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean binary cross-entropy of probabilities (clamped away from 0 and 1)."""
    p = y_hat.clamp(eps, 1.0 - eps)
    return F.binary_cross_entropy(p, y)


def self_correction(y_hat: torch.Tensor, y: torch.Tensor, y_last: torch.Tensor) -> torch.Tensor:
    """Mean ReLoop self-correction term L_sc (``y_last`` is treated as a constant)."""
    y_last = y_last.detach()
    per = y * torch.relu(y_last - y_hat) + (1.0 - y) * torch.relu(y_hat - y_last)
    return per.mean()


def reloop_loss(
    y_hat: torch.Tensor, y: torch.Tensor, y_last: torch.Tensor | None, alpha: float
) -> torch.Tensor:
    """``alpha * L_sc + (1 - alpha) * L_ce``; alpha=0 (or no previous model) is plain BCE."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"reloop alpha must be in [0, 1], got {alpha}")
    ce = bce(y_hat, y)
    if alpha == 0.0:
        return ce
    if y_last is None:
        raise ValueError("reloop_loss with alpha > 0 needs y_last (the previous predictions)")
    return alpha * self_correction(y_hat, y, y_last) + (1.0 - alpha) * ce
