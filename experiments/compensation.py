"""Post-shift log-loss and AUC of the base vs the error-compensated evaluator, per slot, on a
scenario: the ReLoop2 acceptance question for the study.

The pretrained generator serves the scenario greedily (so every run sees the same stream for the
same seed); after ``warmup_batches`` (e.g. up to a shift) the served impressions are cut into
chronological slots and passed to :func:`driftrank.adapt.compare_by_slot`, which scores each
slot with a memory holding only the earlier slots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..adapt.compensation_study import compare_by_slot
from ..agents.pretrained import model_inputs
from ..envs import VectorRerankEnv

__all__ = ["compensation_by_slot"]


def compensation_by_slot(
    scenario,
    evaluator,
    generator,
    *,
    seed: int = 0,
    batch: int = 200,
    warmup_batches: int = 10,
    n_slots: int = 6,
    batches_per_slot: int = 5,
    world: dict | None = None,
    **options,
) -> pd.DataFrame:
    """One row per slot (see ``compare_by_slot``) plus ``seed`` and ``scenario`` columns.

    ``scenario``: a scenario name or WorldConfig; ``world``: overrides (e.g. sizes, shift
    times); ``options``: CompensatedEvaluator key and memory settings (``lam``, ``n_bits``,
    ``id_weight``, ...). Slot 0 is scored by an empty memory, so it equals the base model.
    """
    for name, value in (("batch", batch), ("n_slots", n_slots),
                        ("batches_per_slot", batches_per_slot)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(warmup_batches, bool) or int(warmup_batches) != warmup_batches or \
            warmup_batches < 0:
        raise ValueError(f"warmup_batches must be an int >= 0, got {warmup_batches!r}")
    env = VectorRerankEnv(int(batch), scenario, **(world or {}))
    env.reset(seed=seed)
    served = []
    for step in range(warmup_batches + n_slots * batches_per_slot):
        x = model_inputs(env.world.observation())
        with torch.inference_mode():
            slates = generator.greedy(x["user"], x["candidates"], x["candidate_ids"]).numpy()
        _, _, _, _, info = env.step(slates)
        if step >= warmup_batches:
            rows = np.arange(len(slates))[:, None]
            served.append((x["user"], x["candidates"][rows, slates],
                           x["candidate_ids"][rows, slates], info["clicks"]))
    slots = [served[i:i + batches_per_slot] for i in range(0, len(served), batches_per_slot)]
    out = pd.DataFrame(compare_by_slot(evaluator, slots, **options))
    out["seed"] = seed
    out["scenario"] = scenario if isinstance(scenario, str) else "custom"
    return out
