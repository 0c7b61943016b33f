"""Configuration of the list-wise evaluator.

A plain dataclass so that it round-trips through JSON next to the checkpoint's ``state_dict``:
the config alone must be enough to rebuild the module before loading its weights.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvaluatorConfig:
    """Sizes and options of :class:`~driftrank.evaluator.model.ListwiseEvaluator`.

    ``n_id_buckets``: catalog ids are unbounded (new items arrive over time), so they are hashed
    into a fixed table by ``id % n_id_buckets``; ``use_ids=False`` drops the id embedding
    altogether (cold-start studies, or worlds whose ids carry no signal). ``seed`` fixes the
    initial weights, so that the same config always builds the same module.
    """

    user_dim: int
    item_dim: int
    slate_size: int
    hidden: int = 64
    heads: int = 2
    n_id_buckets: int = 4096
    use_ids: bool = True
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("user_dim", "item_dim", "slate_size", "hidden", "heads", "n_id_buckets"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EvaluatorConfig.{name} must be a positive int, got {value!r}")
        if self.hidden % 2:
            raise ValueError(
                f"EvaluatorConfig.hidden must be even (the Bi-GRU splits it in two halves), "
                f"got {self.hidden}"
            )
        if self.hidden % self.heads:
            raise ValueError(
                f"EvaluatorConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EvaluatorConfig.dropout must be in [0, 1), got {self.dropout!r}")
