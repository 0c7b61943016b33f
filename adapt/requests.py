"""Request batches as the search sees them: validation, per-request seeding, candidate budgets.

Every request's sampler is seeded from ``(seed, batch_index, row)`` only, where ``row`` is the
request's index in the caller's batch: a request gets the same samples whatever chunk, actor or
micro-batch processes it, which is what makes the local and Ray backends agree.
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluator.batch import as_float, as_long
from ..generator.model import gumbel_noise

__all__ = ["budget_split", "check_index", "check_requests", "request_noise", "request_seed"]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def request_seed(seed: int, batch_index: int, row: int) -> int:
    """Seed (< 2**63) of one request's sampler, from (seed, batch_index, row) only."""
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(batch_index) & _MASK64))
    h = _splitmix64(h ^ (int(row) & _MASK64))
    return h >> 1


def check_index(name: str, value) -> int:
    """``value`` as an int >= 0 (bools refused), or a ``ValueError`` naming ``name``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def budget_split(p: int, low: float = 6.0, high: float = 9.0) -> tuple[tuple[float, ...], int]:
    """A candidate budget ``P`` as (step sizes, resamples): ``P - P // 2`` offsets evenly
    spaced in ``[low, high]`` plus ``P // 2`` resamples (``P = 8`` gives the defaults)."""
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 0:
        raise ValueError(f"the candidate budget P must be an int >= 0, got {p!r}")
    n_steps, resamples = int(p) - int(p) // 2, int(p) // 2
    if n_steps == 0:
        return (), resamples
    if n_steps == 1:
        return (float(high),), resamples
    return tuple(float(s) for s in np.linspace(low, high, n_steps)), resamples


def check_requests(
    user,
    candidates,
    candidate_ids,
    *,
    user_dim: int,
    item_dim: int,
    slate_size: int,
    need_ids: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate a request batch; return float32/int64 tensors or raise a clear ValueError."""
    try:
        user, candidates = as_float(user), as_float(candidates)
    except (TypeError, ValueError) as e:
        raise ValueError(f"user/candidates must be numeric arrays ({e})") from e
    if user.ndim != 2 or user.shape[1] != user_dim:
        raise ValueError(f"user must be (B, {user_dim}), got shape {tuple(user.shape)}")
    b = user.shape[0]
    if candidates.ndim != 3 or candidates.shape[0] != b or candidates.shape[2] != item_dim:
        raise ValueError(
            f"candidates must be (B={b}, N, {item_dim}), got shape {tuple(candidates.shape)}"
        )
    n = candidates.shape[1]
    if n < slate_size:
        raise ValueError(f"{n} candidates cannot fill a slate of {slate_size}")
    if not bool(torch.isfinite(user).all()):
        raise ValueError("user features contain NaN or infinite values")
    if not bool(torch.isfinite(candidates).all()):
        raise ValueError("candidate features contain NaN or infinite values")
    ids = None
    if candidate_ids is not None:
        if isinstance(candidate_ids, torch.Tensor):
            floating = candidate_ids.is_floating_point()
        else:
            floating = np.issubdtype(np.asarray(candidate_ids).dtype, np.floating)
        if floating:
            raise ValueError("candidate_ids must be integers, got a floating-point array")
        ids = as_long(candidate_ids)
        if tuple(ids.shape) != (b, n):
            raise ValueError(f"candidate_ids must be ({b}, {n}), got shape {tuple(ids.shape)}")
    elif need_ids:
        raise ValueError("candidate_ids are required (the models use catalog ids)")
    return user, candidates, ids


def request_noise(
    seed: int, batch_index: int, row_offset: int, b: int, per_request: int, k: int, n: int
) -> torch.Tensor:
    """Gumbel noise (B * per_request, K, N), request major, each request's block drawn from its
    own seeded generator (see :func:`request_seed`)."""
    g = torch.Generator()
    out = torch.empty(b, per_request, k, n)
    for i in range(b):
        g.manual_seed(request_seed(seed, batch_index, row_offset + i))
        out[i] = torch.rand((per_request, k, n), generator=g)
    return gumbel_noise(out).view(b * per_request, k, n)
