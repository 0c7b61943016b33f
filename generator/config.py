"""Configuration of the slate generator (JSON-serialisable, stored next to checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GeneratorConfig:
    """Sizes and options of :class:`~driftrank.generator.model.SlateGenerator`.

    ``n_id_buckets``/``use_ids``: catalog ids are hashed (``id % n_id_buckets``) because new ids
    keep appearing. ``logit_clip`` bounds pointer logits to ``C * tanh(logit / C)`` (as in
    pointer-network RL), which keeps sampling from collapsing early in policy-gradient training.
    ``seed`` fixes the initial weights.
    """

    user_dim: int
    item_dim: int
    slate_size: int
    hidden: int = 64
    n_id_buckets: int = 4096
    use_ids: bool = True
    logit_clip: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("user_dim", "item_dim", "slate_size", "hidden", "n_id_buckets"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GeneratorConfig.{name} must be a positive int, got {value!r}")
        if not self.logit_clip > 0:
            raise ValueError(f"GeneratorConfig.logit_clip must be > 0, got {self.logit_clip!r}")
