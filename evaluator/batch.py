"""Turning a logged batch (dict of numpy arrays) into the tensors the models consume.

The world hands out numpy; models work on torch. Conversions and the gather of a slate's
item features live here once, so evaluator, generator and their trainers agree on shapes and
fail with the same readable message when a key is missing or a shape is off.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

LOGGED_KEYS = ("user", "candidates", "candidate_ids", "slates", "clicks")


def as_float(x) -> torch.Tensor:
    """Float32 tensor view of ``x`` (numpy or torch); no copy when already float32."""
    if isinstance(x, torch.Tensor):
        return x if x.dtype == torch.float32 else x.float()
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def as_long(x) -> torch.Tensor:
    """Int64 tensor view of ``x`` (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        return x if x.dtype == torch.int64 else x.long()
    return torch.as_tensor(np.asarray(x, dtype=np.int64))


def check_logged(data: Mapping, keys=LOGGED_KEYS) -> int:
    """Check that a logged batch has the keys and consistent shapes; return its request count.

    Raises ``ValueError`` naming the first problem, so a mis-built batch fails before training
    starts rather than as a cryptic broadcasting error deep inside a model.
    """
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(
            f"logged batch is missing {missing}; expected keys {list(keys)} "
            f"(got {sorted(data)})"
        )
    n = len(data[keys[0]])
    for k in keys:
        if len(data[k]) != n:
            raise ValueError(f"logged batch key {k!r} has {len(data[k])} rows, expected {n}")
    if "candidates" in keys and np.ndim(data["candidates"]) != 3:
        raise ValueError(
            f"'candidates' must be (R, N, Fi), got shape {np.shape(data['candidates'])}"
        )
    if "slates" in keys and "candidates" in keys:
        s = np.asarray(data["slates"])
        n_cand = np.shape(data["candidates"])[1]
        if s.ndim != 2 or (s.size and (s.min() < 0 or s.max() >= n_cand)):
            raise ValueError(
                f"'slates' must be (R, K) indices into the {n_cand} candidates, "
                f"got shape {s.shape}"
            )
    if "clicks" in keys and "slates" in keys:
        if np.shape(data["clicks"]) != np.shape(data["slates"]):
            raise ValueError(
                f"'clicks' shape {np.shape(data['clicks'])} != 'slates' shape "
                f"{np.shape(data['slates'])}"
            )
    return n


def gather_slate(
    candidates: torch.Tensor, candidate_ids: torch.Tensor | None, slates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Item features (B, K, Fi) and ids (B, K) of the slates, in served order."""
    idx = slates.unsqueeze(-1).expand(-1, -1, candidates.shape[-1])
    items = candidates.gather(1, idx)
    ids = None if candidate_ids is None else candidate_ids.gather(1, slates)
    return items, ids


def logged_tensors(data: Mapping, rows=None) -> dict[str, torch.Tensor]:
    """Tensors of a logged batch (optionally only ``rows``), plus the gathered slate items."""
    check_logged(data)
    out = {}
    for k in LOGGED_KEYS:
        arr = data[k] if rows is None else np.asarray(data[k])[rows]
        out[k] = as_long(arr) if k in ("candidate_ids", "slates") else as_float(arr)
    out["items"], out["item_ids"] = gather_slate(
        out["candidates"], out["candidate_ids"], out["slates"]
    )
    return out
