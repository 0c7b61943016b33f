"""``CompensatedEvaluator``: a frozen evaluator corrected by a streaming error memory (ReLoop2).

The evaluator was trained before the drift; retraining it is slow and risky. ReLoop2's answer is
to leave it alone and correct its *outputs*: every labelled impression is written into an
:class:`~driftrank.adapt.error_memory.ErrorMemory` keyed by the evaluator's own hidden vector
for that position, together with the click and the evaluator's prediction. A new prediction
reads back the labels of similar past impressions (same LSH buckets) and moves toward them:

    y_comp = clip(y_base + lambda * (y_bar - gamma * y_base - (1 - gamma) * y_bar_base), 0, 1)

The keys are computed by the frozen evaluator, so a write at feedback time hashes exactly like a
read at serving time (``observe`` recomputes them; the evaluator is deterministic in eval mode).

Labels written are clicks, the quantity the evaluator predicts. Conversions are a different
label (purchase given click) that this evaluator does not model, so they are not written; an
agent that scores conversions would keep a second memory for them.

Call ``reset`` after retraining the evaluator: keys and base predictions of the old model no
longer describe the new one.
"""

from __future__ import annotations

import numpy as np
import torch

from .error_memory import ErrorMemory


class CompensatedEvaluator:
    def __init__(self, evaluator, memory: ErrorMemory | None = None, **memory_config):
        self.evaluator = evaluator.eval()
        key_dim = int(evaluator.config.hidden)
        if memory is not None and memory_config:
            raise ValueError("pass either a ready ErrorMemory or memory settings, not both")
        self.memory = memory if memory is not None else ErrorMemory(key_dim, **memory_config)
        if self.memory.key_dim != key_dim:
            raise ValueError(
                f"memory key_dim={self.memory.key_dim} does not match the evaluator's hidden "
                f"size {key_dim}; build the memory with key_dim={key_dim}")

    @torch.inference_mode()
    def predict(self, user, items, item_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """(compensated, base) per-position click probabilities, each (B, K) float64."""
        base, hidden = self.evaluator.predict(user, items, item_ids)
        base = base.numpy().astype(np.float64)
        b, k = base.shape
        keys = hidden.reshape(b * k, -1).numpy()
        comp = self.memory.compensate(keys, base.reshape(-1)).reshape(b, k)
        return comp, base

    def score(self, user, items, item_ids=None, weights=None) -> torch.Tensor:
        """Expected reward of each slate (B,) from compensated predictions: a LAST scorer."""
        comp, _ = self.predict(user, items, item_ids)
        if weights is not None:
            comp = comp * np.asarray(weights, dtype=np.float64)
        return torch.from_numpy(comp.sum(axis=1))

    __call__ = score

    @torch.inference_mode()
    def observe(self, user, items, item_ids, clicks) -> int:
        """Write labelled impressions (B, K) of served slates; returns how many were written.

        Positions with a negative label (e.g. -1 for an empty slot) are skipped.
        """
        base, hidden = self.evaluator.predict(user, items, item_ids)
        y = np.asarray(clicks, dtype=np.float64).reshape(-1)
        keep = y >= 0
        keys = hidden.reshape(y.size, -1).numpy()[keep]
        return self.memory.write(keys, y[keep], base.numpy().reshape(-1)[keep])

    def reset(self) -> None:
        self.memory.reset()

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
