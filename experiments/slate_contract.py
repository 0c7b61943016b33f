"""Holding an agent to its contract: what ``act()`` returns is checked before it is served.

The environment checks actions too, but it cannot say *who* broke the contract or *when*. In a
cell the culprit is always the agent's ``act()``, so the runner checks its slates first and
names the agent, the step (env batch), the first bad row and what is wrong with it, and says
what a valid slate is. A repeated candidate is a fault under strict serving (the default);
with ``strict=False`` (chosen on purpose) it is served with the slot left empty and the runner
counts empty slots in the results.
"""

from __future__ import annotations

import numpy as np


class SlateContractError(ValueError):
    """An agent's ``act()`` returned slates that break the contract."""


def check_slates(slates, *, agent: str, step: int, batch: int, n_candidates: int,
                 slate_size: int, strict: bool) -> np.ndarray:
    """``slates`` as a (batch, K) int64 array, or :class:`SlateContractError`."""
    where = f"agent {agent!r}: act() at step {step} (requests {step * batch}-" \
            f"{(step + 1) * batch - 1})"
    rule = (f"act() must return a ({batch}, {slate_size}) integer array of distinct candidate "
            f"indices in [0, {n_candidates - 1}]")
    try:
        arr = np.asarray(slates)
    except Exception as exc:  # ragged lists and the like
        raise SlateContractError(f"{where} returned something that is not an array ({exc}); "
                                 f"{rule}") from exc
    if arr.shape != (batch, slate_size):
        raise SlateContractError(f"{where} returned shape {arr.shape}; {rule}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise SlateContractError(
                f"{where} returned a non-finite value (NaN or inf) in row {row}: "
                f"{arr[row].tolist()}; {rule}")
        raise SlateContractError(f"{where} returned float dtype {arr.dtype} (first row "
                                 f"{arr[0].tolist()}); {rule} (e.g. .astype(np.int64))")
    if arr.dtype.kind not in "iu":
        raise SlateContractError(f"{where} returned dtype {arr.dtype}; {rule}")
    out = (arr < 0) | (arr >= n_candidates)
    if out.any():
        row, col = (int(i) for i in np.argwhere(out)[0])
        raise SlateContractError(
            f"{where} returned candidate index {int(arr[row, col])} in row {row}, slot {col}, "
            f"outside [0, {n_candidates - 1}]: {rule}")
    arr = arr.astype(np.int64, copy=False)
    if strict:
        ordered = np.sort(arr, axis=1)
        dup = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if dup.any():
            row = int(np.argmax(dup))
            values, counts = np.unique(arr[row], return_counts=True)
            raise SlateContractError(
                f"{where} repeated candidate(s) {values[counts > 1].tolist()} in row {row} "
                f"({arr[row].tolist()}); {rule}. To serve such slates on purpose (the repeated "
                "slot is left empty and counted), run the cell with strict=False")
    return arr
