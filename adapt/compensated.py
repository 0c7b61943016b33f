"""``CompensatedEvaluator``: a frozen evaluator corrected by a streaming error memory (ReLoop2).

The evaluator was trained before the drift; retraining it is slow and risky. ReLoop2's answer is
to leave it alone and correct its *outputs*: every labelled impression is written into an
:class:`~driftrank.adapt.error_memory.ErrorMemory` keyed by what the evaluator saw at that
position, together with the click and the evaluator's prediction. A new prediction reads back
the labels of similar past impressions (same LSH buckets) and moves toward them:

    y_comp = clip(y_base + lambda * (y_bar - gamma * y_base - (1 - gamma) * y_bar_base), 0, 1)

The key of one impression is the evaluator's hidden vector at that position (scaled to unit
length: SimHash only sees angles) joined with ``id_weight`` times a fixed random unit vector of
the item id. Why the id part: drift that hits single items (an item's quality changes) is shared
by the impressions of that item and by nothing else the hidden vector reliably separates, so
without identity in the key those corrections average out inside crowded buckets. The id
vectors are drawn once from ``id_seed`` (one row per id bucket, ids taken modulo
``id_buckets``), never trained. ``id_weight = 0`` gives the plain hidden-vector key.

The keys are computed by the frozen evaluator, so a write at feedback time hashes exactly like a
read at serving time (``observe`` recomputes them; the evaluator is deterministic in eval mode).

Labels written are clicks, the quantity the evaluator predicts. Conversions are a different
label (purchase given click) that this evaluator does not model, so they are not written.

When the evaluator is replaced (retrained), call :meth:`set_evaluator`: it resets the memory,
since keys and base predictions of the old model no longer describe the new one.

Calling the object returns per-position compensated click probabilities (a torch tensor), so
LAST's search direction and its final selection use the same judge.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .error_memory import ErrorMemory


class CompensatedEvaluator:
    """A frozen evaluator plus an error memory; see the module docstring.

    ``memory``: a ready :class:`ErrorMemory` whose ``key_dim`` is ``hidden + id_dims``, or
    ``None`` to build one from ``memory_config``. ``id_weight``/``id_dims``/``id_buckets``/
    ``id_seed``: the item-identity part of the key.
    """

    def __init__(self, evaluator, memory: ErrorMemory | None = None, *, id_weight: float = 2.0,
                 id_dims: int = 16, id_buckets: int = 1 << 16, id_seed: int = 12345,
                 **memory_config):
        id_weight = float(id_weight)
        if not (np.isfinite(id_weight) and id_weight >= 0.0):
            raise ValueError(f"id_weight must be a finite number >= 0, got {id_weight!r}")
        if int(id_dims) != id_dims or id_dims < 1 or int(id_buckets) != id_buckets or \
                id_buckets < 1:
            raise ValueError(f"id_dims and id_buckets must be positive ints, got {id_dims!r}, "
                             f"{id_buckets!r}")
        self.evaluator = evaluator.eval()
        self.id_weight = id_weight
        self.id_dims = int(id_dims) if id_weight > 0 else 0
        self.id_buckets = int(id_buckets)
        self.id_seed = int(id_seed)
        if self.id_dims:
            rng = np.random.default_rng(self.id_seed)
            table = rng.standard_normal((self.id_buckets, self.id_dims)).astype(np.float32)
            table /= np.linalg.norm(table, axis=1, keepdims=True)
            self._id_table = table * np.float32(id_weight)
        else:
            self._id_table = None
        key_dim = self.key_dim
        if memory is not None and memory_config:
            raise ValueError("pass either a ready ErrorMemory or memory settings, not both")
        self.memory = memory if memory is not None else ErrorMemory(key_dim, **memory_config)
        if self.memory.key_dim != key_dim:
            raise ValueError(
                f"memory key_dim={self.memory.key_dim} does not match the key size {key_dim} "
                f"(evaluator hidden {int(self.evaluator.config.hidden)} + {self.id_dims} id "
                f"dims); build the memory with key_dim={key_dim}")

    @property
    def key_dim(self) -> int:
        return int(self.evaluator.config.hidden) + self.id_dims

    def key_options(self) -> dict[str, Any]:
        """The key settings; with ``memory=ErrorMemory.from_state_dict(...)`` and the evaluator
        they rebuild this object (how a Ray actor gets a read-only snapshot)."""
        return {"id_weight": self.id_weight, "id_dims": self.id_dims or 16,
                "id_buckets": self.id_buckets, "id_seed": self.id_seed}

    # -- keys ------------------------------------------------------------------------------------

    def keys(self, hidden: torch.Tensor, item_ids) -> np.ndarray:
        """Memory keys (B * K, key_dim) float32 from hidden vectors (B, K, H) and ids (B, K)."""
        h = hidden.reshape(-1, hidden.shape[-1]).numpy().astype(np.float32, copy=True)
        h /= np.linalg.norm(h, axis=1, keepdims=True) + np.float32(1e-12)
        if self._id_table is None:
            return h
        if item_ids is None:
            raise ValueError("item ids are required: this memory's keys carry item identity "
                             "(pass id_weight=0 for keys from the hidden vector only)")
        ids = np.asarray(item_ids, dtype=np.int64).reshape(-1) % self.id_buckets
        return np.concatenate([h, self._id_table[ids]], axis=1)

    # -- serving ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def predict(self, user, items, item_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """(compensated, base) per-position click probabilities, each (B, K) float64."""
        base, hidden = self.evaluator.predict(user, items, item_ids)
        base = base.numpy().astype(np.float64)
        b, k = base.shape
        comp = self.memory.compensate(self.keys(hidden, item_ids), base.reshape(-1))
        return comp.reshape(b, k), base

    def values(self, user, items, item_ids=None) -> torch.Tensor:
        """Compensated per-position click probabilities (B, K) float32: LAST's judge."""
        comp, _ = self.predict(user, items, item_ids)
        return torch.from_numpy(comp.astype(np.float32))

    __call__ = values

    def score(self, user, items, item_ids=None, weights=None) -> torch.Tensor:
        """Expected reward of each slate (B,) from compensated predictions."""
        comp, _ = self.predict(user, items, item_ids)
        if weights is not None:
            comp = comp * np.asarray(weights, dtype=np.float64)
        return torch.from_numpy(comp.sum(axis=1))

    # -- learning from the stream ----------------------------------------------------------------

    @torch.inference_mode()
    def observe(self, user, items, item_ids, clicks) -> int:
        """Write labelled impressions (B, K) of served slates; returns how many were written.

        Positions with a negative label (e.g. -1 for an empty slot) are skipped.
        """
        base, hidden = self.evaluator.predict(user, items, item_ids)
        y = np.asarray(clicks, dtype=np.float64).reshape(-1)
        if y.size != base.numel():
            raise ValueError(f"clicks must be one label per position {tuple(base.shape)}, "
                             f"got {np.asarray(clicks).shape}")
        keep = y >= 0
        keys = self.keys(hidden, item_ids)[keep]
        return self.memory.write(keys, y[keep], base.numpy().reshape(-1)[keep])

    def set_evaluator(self, evaluator) -> None:
        """Judge with ``evaluator`` from now on and empty the memory (its errors were the old
        model's). Call this whenever the base evaluator is retrained or replaced."""
        if int(evaluator.config.hidden) != int(self.evaluator.config.hidden):
            raise ValueError("the new evaluator's hidden size differs; build a new "
                             "CompensatedEvaluator for it")
        self.evaluator = evaluator.eval()
        self.memory.reset()

    def reset(self) -> None:
        self.memory.reset()

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
