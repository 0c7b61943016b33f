"""Delayed labels: purchases (and, optionally, clicks) that happen now but are reported later.

This is the motivation of LAST: the label that matters most arrives hours after the slate was
served, so a model can only adapt to it late. A label caused at tick t with delay D is due
at tick t + D and lands in the first step whose window [s*B, (s+1)*B) reaches it, never in the
step that caused it. It is delivered exactly once, in the same batch row as its request.

The realistic conversion delay follows the shape measured on Criteo's display ads (Chapelle,
KDD 2014): about 35% of conversions within an hour and 50% within a day, with a long tail over
the 30-day attribution window. A two-component exponential mixture reproduces both quantiles
(a fast component of mean 0.2 h holding 34.5% of the mass, a slow one of mean 88.9 h); delays
past the attribution window are never reported.
"""

from __future__ import annotations

import numpy as np

from .config import WorldConfig
from .types import FIELDS as _FIELDS
from .types import Conversions

FAST_SHARE, FAST_MEAN_HOURS, SLOW_MEAN_HOURS = 0.345, 0.2, 88.9
_NONE = np.zeros(0, np.int64)


def conversion_delays(c: WorldConfig, u_mix: np.ndarray, expo: np.ndarray) -> np.ndarray:
    """Delays in ticks (>= 1) from uniforms ``u_mix`` and unit exponentials ``expo``.

    A delay beyond the attribution window comes back as -1 (never reported). Taking the
    random numbers as arguments keeps the amount drawn per step fixed (common random numbers).
    The world computes the same delays for its float32 dice in ``kernels.conversion_delays``
    (tested equal to this function).
    """
    if c.conversion_delay == "exponential":
        return np.maximum(np.ceil(expo * c.conversion_delay_mean), 1).astype(np.int64)
    hours = expo * np.where(u_mix < FAST_SHARE, FAST_MEAN_HOURS, SLOW_MEAN_HOURS)
    ticks = np.maximum(np.ceil(hours * c.ticks_per_hour), 1).astype(np.int64)
    return np.where(hours <= c.conversion_window_hours, ticks, -1)


class ConversionQueue:
    """Pending delayed labels keyed by the step they land in (O(1) push and pop per step).

    Each pending part is an int64 table (7, n) whose rows are the fields of
    :data:`~driftrank.envs.types.FIELDS` (as ``kernels.queued_labels`` builds them); ``record``
    is the type handed back by :meth:`pop` (:class:`Conversions` by default; the click-report
    queue uses :class:`~driftrank.envs.types.ClickReports`)."""

    def __init__(self, record: type[Conversions] = Conversions) -> None:
        self._pending: dict[int, list[np.ndarray]] = {}
        self._record = record

    def __len__(self) -> int:
        return sum(part.shape[1] for parts in self._pending.values() for part in parts)

    def push(self, land_step: np.ndarray, **fields: np.ndarray) -> None:
        """Schedule conversions; ``land_step`` and every field are 1-D arrays of equal length."""
        if land_step.size == 0:
            return
        order = np.argsort(land_step, kind="stable")
        self.push_sorted(land_step[order],
                         np.stack([fields[name][order] for name in _FIELDS]).astype(np.int64))

    def push_sorted(self, land_step: np.ndarray, table: np.ndarray) -> None:
        """Schedule labels already sorted by ``land_step``: ``table`` (7, n) int64, one row per
        field. Each landing step holds a column slice of it (a view, no copy)."""
        n = land_step.size
        if n == 0:
            return
        if land_step[0] == land_step[-1]:  # the common case: one landing step
            self._pending.setdefault(int(land_step[0]), []).append(table)
            return
        cuts = (np.flatnonzero(np.diff(land_step)) + 1).tolist()
        for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
            self._pending.setdefault(int(land_step[lo]), []).append(table[:, lo:hi])

    def pop(self, step: int) -> Conversions:
        """Conversions landing at ``step`` (removed from the queue)."""
        parts = self._pending.pop(step, None)
        if not parts:  # the common case: shared empty columns (size 0), no allocations
            return self._record(*(_NONE,) * len(_FIELDS))
        return self._record(*(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)))
