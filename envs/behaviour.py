"""The behaviour policy: the production ranker whose traffic the world has seen.

A production system's logs come from its own ranker, not from a uniform one. This one is a
*noisy relevance ranker with exploration*: it sorts candidates by the true attraction logit plus
Gaussian noise (std 3 by default: a mediocre production model that a learned re-ranker can
beat), and with probability ``epsilon`` per slot shows a random unused candidate instead
(exploration, so the logs cover more than the ranker's favourites). It serves the offline logs
and the world's warm-up (the history users and items have when an episode starts).
"""

from __future__ import annotations

import numpy as np

BEHAVIOUR_NOISE, BEHAVIOUR_EPSILON = 3.0, 0.1


def behaviour_slates(
    logits: np.ndarray, k: int, noise: float, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """Noisy relevance ranking with per-slot epsilon exploration, (B, K) distinct indices."""
    b, n = logits.shape
    scores = logits + noise * rng.standard_normal((b, n))
    order = np.argsort(-scores, axis=1)
    explore = rng.random((b, k)) < epsilon
    slates = np.where(explore, rng.integers(n, size=(b, k)), order[:, :k])
    return _repair_duplicates(slates, order)


def _repair_duplicates(slates: np.ndarray, fallback_order: np.ndarray) -> np.ndarray:
    """Replace repeated indices by the best-ranked unused candidates."""
    b, k = slates.shape
    for row in np.flatnonzero([len(set(s)) < k for s in slates.tolist()]):
        seen: set[int] = set()
        fixed = []
        fallback = iter(int(c) for c in fallback_order[row])
        for c in slates[row].tolist():
            while c in seen:
                c = next(fallback)
            seen.add(c)
            fixed.append(c)
        slates[row] = fixed
    return slates
