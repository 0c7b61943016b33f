"""What one LAST (or best-of-n) search served for a batch of requests, and how to join chunks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LastResult"]


@dataclass
class LastResult:
    """What LAST served for a batch of B requests.

    ``slates`` (B, K) int64: served slates (indices into each request's candidates).
    ``scores`` (B,): judge score of the served slates; ``base_scores`` (B,): of the greedy.
    ``winner`` (B,) int64: index into ``labels`` of the served candidate; **0 is the
    unperturbed greedy slate** (served when nothing beats it), ``1..P`` the candidates in the
    order of ``labels`` (step offsets / serial steps first, then resamples).
    ``candidate_scores`` (B, P + 1): every candidate's score (column 0: greedy); a candidate
    whose slate equals the greedy slate gets exactly the greedy's score.
    ``timing``: seconds per phase of the call (``total`` always present).
    ``candidate_slates`` (B, P + 1, K): every candidate's slate, in the order of ``labels``.
    """

    slates: np.ndarray
    scores: np.ndarray
    base_slates: np.ndarray
    base_scores: np.ndarray
    winner: np.ndarray
    candidate_scores: np.ndarray
    labels: tuple[str, ...]
    timing: dict[str, float] = field(default_factory=dict)
    candidate_slates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.slates)

    @property
    def gain(self) -> np.ndarray:
        """Score gain over the greedy slate (B,), >= 0."""
        return self.scores - self.base_scores

    @property
    def changed(self) -> np.ndarray:
        """(B,) bool: the served slate is not the greedy one."""
        return self.winner != 0

    @staticmethod
    def concat(parts: Sequence[LastResult]) -> LastResult:
        """Rows of several results (chunks of one batch, in order) as one result."""
        if not parts:
            raise ValueError("cannot concatenate zero LastResults")
        labels = parts[0].labels
        if any(p.labels != labels for p in parts):
            raise ValueError("cannot concatenate LastResults of different candidate sets")
        timing: dict[str, float] = {}
        for p in parts:
            for k, v in p.timing.items():
                timing[k] = max(timing.get(k, 0.0), v)  # chunks run in parallel
        return LastResult(
            slates=np.concatenate([p.slates for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            base_slates=np.concatenate([p.base_slates for p in parts]),
            base_scores=np.concatenate([p.base_scores for p in parts]),
            winner=np.concatenate([p.winner for p in parts]),
            candidate_scores=np.concatenate([p.candidate_scores for p in parts]),
            labels=labels,
            timing=timing,
            candidate_slates=None if any(p.candidate_slates is None for p in parts)
            else np.concatenate([p.candidate_slates for p in parts]),
        )
