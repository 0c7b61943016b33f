"""Delayed conversions: purchases that happen now but are reported steps later.

This is the motivation of LAST: the label that matters most arrives hours after the slate was
served, so a model can only adapt to it late. A conversion caused at tick t with delay D is due
at tick t + D and lands in the first step whose window [s*B, (s+1)*B) reaches it, never in the
step that caused it. It is delivered exactly once, in the same batch row as its request.
"""

from __future__ import annotations

import numpy as np

from .types import FIELDS as _FIELDS
from .types import Conversions


class ConversionQueue:
    """Pending conversions keyed by the step they land in (O(1) push and pop per step)."""

    def __init__(self) -> None:
        self._pending: dict[int, list[dict[str, np.ndarray]]] = {}

    def __len__(self) -> int:
        return sum(len(part["request_id"]) for parts in self._pending.values() for part in parts)

    def push(self, land_step: np.ndarray, **fields: np.ndarray) -> None:
        """Schedule conversions; ``land_step`` and every field are 1-D arrays of equal length."""
        if land_step.size == 0:
            return
        order = np.argsort(land_step, kind="stable")
        land_step = land_step[order]
        cuts = np.flatnonzero(np.diff(land_step)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [land_step.size]))
        for lo, hi in zip(starts, ends, strict=True):
            part = {name: fields[name][order[lo:hi]].astype(np.int64) for name in _FIELDS}
            self._pending.setdefault(int(land_step[lo]), []).append(part)

    def pop(self, step: int) -> Conversions:
        """Conversions landing at ``step`` (removed from the queue)."""
        parts = self._pending.pop(step, None)
        if not parts:
            return Conversions()
        if len(parts) == 1:
            return Conversions(**parts[0])
        return Conversions(**{n: np.concatenate([p[n] for p in parts]) for n in _FIELDS})
