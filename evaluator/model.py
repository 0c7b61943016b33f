"""List-wise, context-aware click model: judges a whole ordered slate at once.

Why list-wise: the click on one item depends on what surrounds it (a same-topic item shown
higher dampens interest, position bias, contrast with neighbours), so re-ranking can only be
judged by a model that sees the full ordered slate. The official LAST evaluator mixes
sum-pooling, per-position, self-attention, GRU and pairwise channels; this one keeps a compact
subset that covers the same effects:

- per-position token: item features + hashed id embedding + learned position embedding + user;
- user x item interaction (elementwise product): affinity is bilinear, which a small MLP
  over a concatenation learns slowly;
- self-attention over the slate (who else is shown, anywhere);
- Bi-GRU over the slate (what was shown *above* and *below*, in order);
- pairwise channel: learned item-item similarities to the items shown above and below (max
  and mean), which is how "this topic was already shown higher" becomes visible; attention and
  GRU can represent it too, but learn it slowly from logged clicks;
- slate mean (sum-pooling channel: the overall mood of the list).

``hidden()`` exposes the last hidden vector per position, the key of ReLoop2's error memory.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .batch import as_float, as_long
from .config import EvaluatorConfig
from .id_embedding import HashedIdEmbedding

_FUSED_ATTENTION = getattr(torch, "_native_multi_head_attention", None)


class ListwiseEvaluator(nn.Module):
    """Per-position click probability of an ordered slate, given the user.

    Inputs: ``user`` (B, Fu), ``items`` (B, K, Fi) in served order, ``item_ids`` (B, K) catalog
    ids (ignored, and may be ``None``, when ``config.use_ids`` is False). K may be smaller than
    ``config.slate_size`` (a truncated slate); positions are 0..K-1.
    """

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        h = config.hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.user_proj = nn.Linear(config.user_dim, h)
            self.item_proj = nn.Linear(config.item_dim, h)
            self.id_emb = HashedIdEmbedding(config.n_id_buckets, h) if config.use_ids else None
            self.pos_emb = nn.Embedding(config.slate_size, h)
            nn.init.normal_(self.pos_emb.weight, std=0.1)
            self.token_norm = nn.LayerNorm(h)
            self.attn = nn.MultiheadAttention(
                h, config.heads, dropout=config.dropout, batch_first=True
            )
            self.attn_norm = nn.LayerNorm(h)
            self.gru = nn.GRU(h, h // 2, batch_first=True, bidirectional=True)
            self.pair_proj = nn.Linear(h, h)
            self.pair_out = nn.Linear(4 * config.heads, h)
            self.mix = nn.Sequential(
                nn.Linear(6 * h, h),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(h, h),
                nn.ReLU(),
            )
            self.out = nn.Linear(h, 1)
            # wide part: a direct affinity term and a per-position bias, so the easy, additive
            # effects are learned from few samples and the deep part only models the rest
            self.affinity = nn.Linear(h, 1)
            self.pos_bias = nn.Parameter(torch.zeros(config.slate_size))

    # -- inputs ---------------------------------------------------------------------------------

    def _check(self, user, items, item_ids):
        user, items = as_float(user), as_float(items)
        c = self.config
        if user.ndim != 2 or user.shape[1] != c.user_dim:
            raise ValueError(f"user must be (B, {c.user_dim}), got {tuple(user.shape)}")
        if items.ndim != 3 or items.shape[2] != c.item_dim or items.shape[0] != user.shape[0]:
            raise ValueError(
                f"items must be (B={user.shape[0]}, K, {c.item_dim}), got {tuple(items.shape)}"
            )
        if items.shape[1] > c.slate_size:
            raise ValueError(
                f"slate has {items.shape[1]} positions, the evaluator knows {c.slate_size}"
            )
        if c.use_ids:
            if item_ids is None:
                raise ValueError("item_ids are required (config.use_ids=True)")
            item_ids = as_long(item_ids)
            if item_ids.shape != items.shape[:2]:
                raise ValueError(
                    f"item_ids must be {tuple(items.shape[:2])}, got {tuple(item_ids.shape)}"
                )
        return user, items, item_ids

    # -- forward --------------------------------------------------------------------------------

    def hidden(self, user, items, item_ids=None) -> torch.Tensor:
        """Last hidden vector per position (B, K, H): the key for an error memory."""
        return self._forward(user, items, item_ids)[0]

    def _forward(self, user, items, item_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden vectors (B, K, H) and click logits (B, K)."""
        user, items, item_ids = self._check(user, items, item_ids)
        k = items.shape[1]
        u = self.user_proj(user).unsqueeze(1)  # (B, 1, H)
        it = self.item_proj(items)  # (B, K, H)
        if self.id_emb is not None:
            it = it + self.id_emb(item_ids)
        pos = self.pos_emb.weight[:k].unsqueeze(0)
        tok = self.token_norm(torch.relu(it + u + pos))
        att = self._self_attention(tok)
        att = self.attn_norm(att + tok)
        seq, _ = self.gru(tok)
        pooled = tok.mean(dim=1, keepdim=True).expand_as(tok)
        inter = (u * it) / math.sqrt(self.config.hidden)
        pair = self.pair_out(self._pairwise(it))
        hid = self.mix(torch.cat([tok, att, seq, pooled, inter, pair], dim=-1))
        logit = (self.out(hid) + self.affinity(inter)).squeeze(-1) + self.pos_bias[:k]
        return hid, logit

    def _self_attention(self, tok: torch.Tensor) -> torch.Tensor:
        """``self.attn(tok, tok, tok)``. When judging (eval mode, no autograd) the module would
        take its fused fast path after about a hundred Python-level checks, which cost as much
        as the attention itself at small batches; the fused kernel is then called directly,
        with the module's own weights, so the numbers are the module's."""
        a = self.attn
        if (self.training or torch.is_grad_enabled() or a.in_proj_bias is None
                or _FUSED_ATTENTION is None):  # a private torch function: pinned 2.13 has it
            return a(tok, tok, tok, need_weights=False)[0]
        return _FUSED_ATTENTION(
            tok, tok, tok, a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias,
            a.out_proj.weight, a.out_proj.bias, None, False, True, None)[0]

    def _pair_masks(self, k: int, device) -> list[tuple[torch.Tensor, ...]]:
        """For "above" ([i, j]: j < i) and "below": (not-mask, row has any, row count >= 1),
        built once per slate length (constants; rebuilding them was a tenth of a pass)."""
        cache = self.__dict__.setdefault("_pair_mask_cache", {})
        key = (k, str(device))
        if key not in cache:
            with torch.inference_mode(False):  # ordinary tensors, usable when training too
                above = torch.ones(k, k, dtype=torch.bool, device=device).tril(-1)
                cache[key] = [(~m, m.any(-1), m.sum(-1).clamp(min=1)) for m in (above, above.T)]
        return cache[key]

    def _pairwise(self, it: torch.Tensor) -> torch.Tensor:
        """Max and mean similarity of each item to those above / below it: (B, K, 4*heads)."""
        b, k, h = it.shape
        heads = self.config.heads
        p = self.pair_proj(it).view(b, k, heads, h // heads).transpose(1, 2)  # (B, heads, K, d)
        sim = p @ p.transpose(-1, -2) / math.sqrt(h // heads)  # (B, heads, K, K)
        feats = []
        for not_mask, has_any, n in self._pair_masks(k, it.device):
            mx = sim.masked_fill(not_mask, float("-inf")).amax(-1)
            mx = torch.where(has_any, mx, torch.zeros_like(mx))
            mean = sim.masked_fill(not_mask, 0.0).sum(-1) / n
            feats += [mx, mean]
        return torch.cat(feats, dim=1).transpose(1, 2)  # (B, K, 4*heads)

    def logits(self, user, items, item_ids=None) -> torch.Tensor:
        """Per-position click logits (B, K)."""
        return self._forward(user, items, item_ids)[1]

    def forward(self, user, items, item_ids=None) -> torch.Tensor:
        """Per-position click probabilities (B, K)."""
        return torch.sigmoid(self.logits(user, items, item_ids))

    def predict(self, user, items, item_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (B, K) and hidden vectors (B, K, H) from one pass (memory read/write)."""
        hid, logit = self._forward(user, items, item_ids)
        return torch.sigmoid(logit), hid

    def score(self, user, items, item_ids=None, weights=None) -> torch.Tensor:
        """Expected reward of each slate (B,): sum of predicted clicks, optionally weighted.

        ``weights``: (K,) or (B, K) per-position weights (e.g. a value per slot); ``None`` = 1.
        """
        probs = self.forward(user, items, item_ids)
        if weights is not None:
            probs = probs * as_float(weights)
        return probs.sum(dim=-1)
