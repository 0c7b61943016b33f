"""Checking actions before they touch the world.

An action is an ordered slate of K candidate indices per request. Anything malformed raises a
``ValueError`` that names the fault and what a valid action looks like; the world is left
exactly as it was (no state changes, no random numbers drawn), so the caller can fix the action
and step again.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .world import repeated_mask


def validate_slates(action, batch: int, n: int, k: int, strict: bool) -> np.ndarray:
    """Return ``action`` as a (batch, k) int64 array or raise ``ValueError``.

    ``batch == 0`` means a single request: the action must have shape (k,).
    """
    expected = (k,) if batch == 0 else (batch, k)
    try:
        arr = np.asarray(action)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(
            f"action could not be read as an array of shape {expected}: {exc}") from exc
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(
                arr == np.round(arr)):
            raise ValueError(
                f"action has float dtype {arr.dtype}; pass integer candidate indices "
                f"(e.g. action.astype(np.int64)) of shape {expected}")
        raise ValueError(
            f"action must hold integer candidate indices, got dtype {arr.dtype}; "
            f"expected an int array of shape {expected} with values in [0, {n - 1}]")
    if arr.shape != expected:
        raise ValueError(
            f"action has shape {arr.shape}, expected {expected}: "
            f"{'one slate of K' if batch == 0 else 'B slates of K'}={k} candidate indices")
    if arr.size and not kernels.all_in_range(arr.reshape(-1), n):
        bad = arr[(arr < 0) | (arr >= n)]
        raise ValueError(
            f"action index out of range: {bad[:5].tolist()}; candidate indices must lie in "
            f"[0, {n - 1}] (N={n} candidates per request)")
    slates = arr.reshape(-1, k).astype(np.int64, copy=False)
    if strict:
        repeats = repeated_mask(slates)
        if repeats.any():
            row, col = np.argwhere(repeats)[0]
            raise ValueError(
                f"action repeats candidate {int(slates[row, col])} (request {int(row)}, slot "
                f"{int(col)}); strict=True requires K distinct indices per slate "
                f"(strict=False shows nothing in a repeated slot)")
    return slates
