"""FiLM: feature-wise modulation of a frozen network by a conditioning vector.

``h' = gamma(c) * h + beta(c)`` (Perez et al., AAAI 2018): a small network maps a conditioning
vector ``c`` to a per-feature scale and shift of a frozen model's hidden features. Unlike an
adapter, whose correction is the same function for every request, FiLM's correction is computed
per request from ``c``, so one set of trained weights can apply different corrections to
different users and to different states of the world.

Here ``c`` is the request's own user input (the user features and the time context the models
already read, captured from their ``user_proj`` input) concatenated with a *feedback summary*
shared by all requests: the decayed mean of the frozen evaluator's residuals (click minus
predicted click) per item feature. The item features start with the topic one-hot, so the
summary says, per topic, how far clicks currently sit above or below what the pretrained model
expects: the signal a drift leaves behind. The last layer of the FiLM network starts at zero,
so an untrained FiLM is the identity (gamma = 1, beta = 0).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .patches import USER_SITE, PatchedModel, hidden_size


def modulate(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``gamma * h + beta`` with per-row (B, H) gamma/beta broadcast over h's middle axes."""
    while gamma.ndim < h.ndim:
        gamma, beta = gamma.unsqueeze(-2), beta.unsqueeze(-2)
    return gamma * h + beta


class FiLM(nn.Module):
    """Maps c (B, C) to gamma, beta (B, H); the identity at initialisation."""

    def __init__(self, dim: int, cond_dim: int, hidden: int = 32, seed: int = 0):
        super().__init__()
        if dim < 1 or cond_dim < 1 or hidden < 1:
            raise ValueError(f"FiLM needs positive sizes, got dim={dim} cond_dim={cond_dim} "
                             f"hidden={hidden}")
        self.dim = dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def modulation(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(c)
        return 1.0 + out[..., : self.dim], out[..., self.dim :]

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(c)
        return modulate(h, gamma, beta)


class ContextFiLM(nn.Module):
    """The patch: FiLM conditioned on [captured user input, shared feedback summary]."""

    def __init__(self, dim: int, user_dim: int, summary_dim: int, hidden: int = 32,
                 seed: int = 0):
        super().__init__()
        self.film = FiLM(dim, user_dim + summary_dim, hidden, seed)
        self.register_buffer("summary", torch.zeros(summary_dim))
        self._user: torch.Tensor | None = None

    def capture(self, module, inputs) -> None:
        self._user = inputs[0]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self._user is None or self._user.shape[0] != h.shape[0]:
            raise RuntimeError("ContextFiLM ran without the user input of the same forward; "
                               "build it with film_model() so the user input is captured")
        c = torch.cat([self._user, self.summary.expand(h.shape[0], -1)], dim=1)
        return self.film(h, c)


def film_model(model: nn.Module, site: str, summary_dim: int, hidden: int = 32,
               seed: int = 0) -> PatchedModel:
    """``model`` frozen, with a :class:`ContextFiLM` after sub-module ``site``."""
    patch = ContextFiLM(hidden_size(model), int(model.config.user_dim), summary_dim, hidden,
                        seed)
    patched = PatchedModel(model, {site: patch})
    patched._handles.append(model.get_submodule(USER_SITE).register_forward_pre_hook(
        patch.capture))
    return patched


def set_summary(model: PatchedModel, summary: np.ndarray) -> None:
    """Give every FiLM patch of ``model`` the current feedback summary."""
    for patch in model.patches.values():
        if isinstance(patch, ContextFiLM):
            patch.summary.copy_(torch.as_tensor(summary, dtype=torch.float32))


class ResidualSummary:
    """Decayed per-feature mean of residuals: sum(r * x_f) / sum(|x_f|) over shown items.

    For a one-hot feature (a topic) this is the mean residual of the items with that topic.
    Old feedback fades with a half-life counted in requests. ``scale`` multiplies the output
    (residual means are a few hundredths; the user features the FiLM network also reads are
    of order one).
    """

    def __init__(self, n_features: int, half_life: float = 5_000.0, scale: float = 10.0):
        if half_life <= 0:
            raise ValueError(f"half_life={half_life} must be > 0 requests")
        self.half_life = float(half_life)
        self.scale = float(scale)
        self.sums = np.zeros(n_features)
        self.norms = np.zeros(n_features)

    def update(self, residuals: np.ndarray, items: np.ndarray) -> None:
        """``residuals`` (B, K) of the shown items ``items`` (B, K, F)."""
        decay = 0.5 ** (residuals.shape[0] / self.half_life)
        self.sums = decay * self.sums + np.einsum("bk,bkf->f", residuals, items)
        self.norms = decay * self.norms + np.abs(items).sum(axis=(0, 1))

    def value(self) -> np.ndarray:
        return (self.scale * self.sums / np.maximum(self.norms, 1e-6)).astype(np.float32)

    def state_dict(self) -> dict:
        return {"sums": self.sums.copy(), "norms": self.norms.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.sums = np.array(state["sums"], dtype=np.float64)
        self.norms = np.array(state["norms"], dtype=np.float64)
