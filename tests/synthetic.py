"""A tiny synthetic world with a *known* list-wise click model, for the model tests.

The real world simulator lives in ``driftrank.envs``; this one exists so that the models can
be tested against ground truth without depending on it. Its click model has the three effects
a list-wise re-ranker must handle:

    P(click at k) = examination(k) * sigmoid(affinity(user, item) + quality(item))
                    * penalty ** [item's topic already shown higher in the slate]

Agents (and models) see only noisy features: user features are a noisy linear projection of
the user's latent taste; item features are the topic one-hot, a noisy projection of the item's
latent vector and a noisy quality. Catalog ids are offset by a large number so that the hashed
id embedding is exercised. The behaviour (logging) policy is a noisy relevance ranker that
ignores the topic penalty, so a good re-ranker can beat it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticConfig:
    """Sizes and strengths of the synthetic world (defaults: the project's default sizes)."""

    n_items: int = 1000
    n_topics: int = 8
    latent_dim: int = 8
    user_dim: int = 30
    item_dim: int = 32
    n_candidates: int = 50
    slate_size: int = 10
    feature_noise: float = 0.3
    affinity_scale: float = 2.0
    quality_scale: float = 0.7
    click_offset: float = -3.0
    exam_decay: float = 0.3
    repeat_penalty: float = 0.35
    recall_sharpness: float = 0.5
    behaviour_noise: float = 3.0
    id_offset: int = 1_000_003
    seed: int = 0

    def __post_init__(self) -> None:
        if self.item_dim < self.n_topics + 2:
            raise ValueError("item_dim must leave room for topic one-hot + latent + quality")
        if not self.slate_size <= self.n_candidates <= self.n_items:
            raise ValueError("need slate_size <= n_candidates <= n_items")


@dataclass
class SyntheticTruth:
    """Hidden per-request truth: what the click model needs, never given to a model."""

    attraction_logit: np.ndarray  # (R, N) affinity + quality + offset, per candidate
    topics: np.ndarray  # (R, N) topic of each candidate


class SyntheticWorld:
    """Fixed catalog and feature maps; ``sample`` draws logged requests with their truth."""

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = c = config or SyntheticConfig()
        rng = np.random.default_rng(c.seed)
        self.item_latent = rng.normal(size=(c.n_items, c.latent_dim))
        self.item_topic = rng.integers(0, c.n_topics, size=c.n_items)
        # items of one topic share a direction, so topic is informative about affinity
        topic_dir = rng.normal(size=(c.n_topics, c.latent_dim))
        self.item_latent = 0.7 * self.item_latent + 0.7 * topic_dir[self.item_topic]
        self.item_quality = rng.normal(size=c.n_items)
        self.user_map = rng.normal(size=(c.latent_dim, c.user_dim)) / np.sqrt(c.latent_dim)
        n_proj = c.item_dim - c.n_topics - 1
        self.item_map = rng.normal(size=(c.latent_dim, n_proj)) / np.sqrt(c.latent_dim)
        self.examination = 1.0 / (1.0 + np.arange(c.slate_size)) ** c.exam_decay

    def _item_features(self, items: np.ndarray, rng) -> np.ndarray:
        c = self.config
        onehot = np.eye(c.n_topics)[self.item_topic[items]]
        proj = self.item_latent[items] @ self.item_map
        proj = proj + c.feature_noise * rng.normal(size=proj.shape)
        qual = self.item_quality[items][..., None] + c.feature_noise * rng.normal(
            size=items.shape + (1,)
        )
        return np.concatenate([onehot, proj, qual], axis=-1).astype(np.float32)

    def sample(self, n_requests: int, seed: int) -> tuple[dict, SyntheticTruth]:
        """``n_requests`` logged requests (dict of arrays, the project's batch format) + truth."""
        c = self.config
        rng = np.random.default_rng(seed)
        users = rng.normal(size=(n_requests, c.latent_dim))
        user_feat = users @ self.user_map + c.feature_noise * rng.normal(
            size=(n_requests, c.user_dim)
        )
        aff = users @ self.item_latent.T / np.sqrt(c.latent_dim)  # (R, M)
        logit_all = c.affinity_scale * aff + c.quality_scale * self.item_quality + c.click_offset
        # recall: Gumbel top-N of a softened relevance (a mix of relevant and random items)
        g = rng.gumbel(size=logit_all.shape)
        cand = np.argsort(-(c.recall_sharpness * logit_all + g), axis=1)[:, : c.n_candidates]
        cand = rng.permuted(cand, axis=1)  # candidate order carries no signal
        truth = SyntheticTruth(
            attraction_logit=np.take_along_axis(logit_all, cand, axis=1),
            topics=self.item_topic[cand],
        )
        # behaviour: noisy relevance ranker, blind to the topic penalty
        noisy = truth.attraction_logit + c.behaviour_noise * rng.normal(size=cand.shape)
        slates = np.argsort(-noisy, axis=1)[:, : c.slate_size]
        probs = self.click_probs(truth, slates)
        clicks = (rng.random(probs.shape) < probs).astype(np.float32)
        batch = {
            "user": user_feat.astype(np.float32),
            "candidates": self._item_features(cand, rng),
            "candidate_ids": (cand + c.id_offset).astype(np.int64),
            "slates": slates.astype(np.int64),
            "clicks": clicks,
        }
        return batch, truth

    def click_probs(self, truth: SyntheticTruth, slates: np.ndarray) -> np.ndarray:
        """True click probability (R, K) of each position of the given slates."""
        c = self.config
        slates = np.asarray(slates)
        k = slates.shape[1]
        attract = 1.0 / (1.0 + np.exp(-np.take_along_axis(truth.attraction_logit, slates, 1)))
        topics = np.take_along_axis(truth.topics, slates, axis=1)
        same = topics[:, :, None] == topics[:, None, :]  # (R, K, K)
        above = np.tril(np.ones((k, k), dtype=bool), -1)  # [i, j]: j shown above i
        repeated = (same & above).any(axis=2)
        context = np.where(repeated, c.repeat_penalty, 1.0)
        return self.examination[:k] * attract * context

    def expected_clicks(self, truth: SyntheticTruth, slates: np.ndarray) -> np.ndarray:
        """True expected number of clicks (R,) of each slate."""
        return self.click_probs(truth, slates).sum(axis=1)
