"""Does the error memory make a stale evaluator's predictions better? Slot by slot, as ReLoop2
measures it.

The paper splits a stream into chronological slots and scores each slot with a memory that holds
only earlier slots (prequential: predict first, then learn the labels). :func:`compare_by_slot`
does exactly that for any evaluator and any labelled stream, so a study can ask the question on
any scenario (e.g. one whose drift hits single items) without a runner: collect the served
impressions per slot, pass them here, compare base and compensated per slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..evaluator.metrics import auc, log_loss
from .compensated import CompensatedEvaluator

__all__ = ["compare_by_slot"]

Batch = tuple  # (user (B, Fu), items (B, K, Fi), item_ids (B, K), clicks (B, K))


def compare_by_slot(
    evaluator,
    slots: Iterable[Sequence[Batch]],
    *,
    compensated: CompensatedEvaluator | None = None,
    **options,
) -> list[dict[str, float]]:
    """Per slot: log-loss and AUC of the base and the compensated evaluator on that slot's clicks.

    ``slots``: chronological slots, each a sequence of ``(user, items, item_ids, clicks)``
    batches of served slates (items in served order; clicks -1 for empty slots are skipped).
    Each slot is scored by a memory holding the slots before it, then written into it.
    ``compensated``: a ready :class:`CompensatedEvaluator` around ``evaluator`` (its memory is
    used as it is); otherwise one is built with ``options`` (key and memory settings).

    Returns one dict per slot: ``slot``, ``n`` (labelled impressions), ``base_logloss``,
    ``comp_logloss``, ``base_auc``, ``comp_auc``, ``written_before`` (samples in the memory
    when the slot was scored).
    """
    if compensated is None:
        compensated = CompensatedEvaluator(evaluator, **options)
    elif options:
        raise ValueError("pass either a ready CompensatedEvaluator or its options, not both")
    elif compensated.evaluator is not evaluator:
        raise ValueError("compensated must wrap the evaluator passed as the first argument")
    rows = []
    for i, slot in enumerate(slots):
        ys, comps, bases = [], [], []
        written = compensated.memory.n_written
        for user, items, ids, clicks in slot:
            comp, base = compensated.predict(user, items, ids)
            y = np.asarray(clicks, dtype=np.float64)
            keep = y >= 0
            ys.append(y[keep])
            comps.append(comp[keep])
            bases.append(base[keep])
        for user, items, ids, clicks in slot:
            compensated.observe(user, items, ids, clicks)
        if not ys:
            raise ValueError(f"slot {i} holds no batches; pass at least one batch per slot")
        y, c, b = np.concatenate(ys), np.concatenate(comps), np.concatenate(bases)
        rows.append({
            "slot": i, "n": int(y.size), "written_before": int(written),
            "base_logloss": log_loss(y, b), "comp_logloss": log_loss(y, c),
            "base_auc": auc(y, b), "comp_auc": auc(y, c),
        })
    return rows
