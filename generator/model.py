"""Autoregressive pointer policy: builds a slate one position at a time.

Encoder: each candidate (features + hashed id, conditioned on the user) becomes a state
enc (B, N, H); the decoder's initial state h0 (B, H) comes from the user and the pooled
candidates. Decoder: a GRU cell whose input is the item placed last; at each position a pointer
(dot-product attention of a query from the GRU state over the candidates' keys, plus a static
per-candidate score) scores the candidates not yet placed. Already placed candidates are
masked, so a slate never repeats an item.

Designed for LAST (serving-time perturbation, see DESIGN §4):

- ``encode`` and ``decode`` are separate, so the activations LAST perturbs (h0 and enc) can be
  changed between them and gradients taken with respect to them;
- ``decode`` is batched over rows only; a batch of B requests x P perturbations is just a
  bigger batch (``enc.repeat_interleave(P, 0)``);
- ``param_delta``: per-row offsets of the "perturbable" parameter subset (the pointer query
  projection, see ``perturbable_parameters``), so that P parameter perturbations also run as
  one batched pass instead of P model copies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluator.batch import as_float, as_long
from ..evaluator.id_embedding import HashedIdEmbedding
from .config import GeneratorConfig

PERTURBABLE = ("pointer_query.weight", "pointer_query.bias")


def gumbel_noise(uniform: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise from uniform draws in [0, 1): ``argmax(logit + noise)`` samples from
    ``softmax(logit)`` (the Gumbel-max trick). The clamp keeps both logs finite."""
    return -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))


def _with_delta(q: torch.Tensor, h: torch.Tensor, param_delta: dict | None) -> torch.Tensor:
    """The pointer query ``q = W h + b`` plus a per-request parameter offset (LAST's
    delta-theta on ``pointer_query``), if one is given. ``h`` is (B, H) for one position, or
    (B, K, H) for all positions of a slate at once; the offset of request b applies to all."""
    if param_delta:
        dw = param_delta.get("pointer_query.weight")
        db = param_delta.get("pointer_query.bias")
        if dw is not None:
            q = q + torch.einsum("boh,b...h->b...o", dw, h)
        if db is not None:
            q = q + db.view(db.shape[0], *([1] * (h.ndim - 2)), db.shape[-1])
    return q


class SlateGenerator(nn.Module):
    """Pointer-network slate policy over N candidates, producing K distinct indices."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        h = config.hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.user_proj = nn.Linear(config.user_dim, h)
            self.item_proj = nn.Linear(config.item_dim, h)
            self.id_emb = HashedIdEmbedding(config.n_id_buckets, h) if config.use_ids else None
            self.enc_mlp = nn.Sequential(nn.Linear(3 * h, h), nn.ReLU(), nn.Linear(h, h))
            self.init_state = nn.Linear(2 * h, h)
            self.start = nn.Parameter(torch.zeros(h))
            self.cell = nn.GRUCell(h, h)
            self.pointer_key = nn.Linear(h, h, bias=False)
            self.pointer_query = nn.Linear(h, h)
            self.static_score = nn.Linear(h, 1)

    # -- encoder --------------------------------------------------------------------------------

    def encode(self, user, candidates, candidate_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate states enc (B, N, H) and decoder initial state h0 (B, H)."""
        c = self.config
        user, candidates = as_float(user), as_float(candidates)
        if user.ndim != 2 or user.shape[1] != c.user_dim:
            raise ValueError(f"user must be (B, {c.user_dim}), got {tuple(user.shape)}")
        if (
            candidates.ndim != 3
            or candidates.shape[2] != c.item_dim
            or candidates.shape[0] != user.shape[0]
        ):
            raise ValueError(
                f"candidates must be (B={user.shape[0]}, N, {c.item_dim}), "
                f"got {tuple(candidates.shape)}"
            )
        if candidates.shape[1] < c.slate_size:
            raise ValueError(
                f"{candidates.shape[1]} candidates cannot fill a slate of {c.slate_size}"
            )
        u = self.user_proj(user).unsqueeze(1)  # (B, 1, H)
        it = self.item_proj(candidates)
        if self.id_emb is not None:
            if candidate_ids is None:
                raise ValueError("candidate_ids are required (config.use_ids=True)")
            ids = as_long(candidate_ids)
            if ids.shape != candidates.shape[:2]:
                raise ValueError(
                    f"candidate_ids must be {tuple(candidates.shape[:2])}, got {tuple(ids.shape)}"
                )
            it = it + self.id_emb(ids)
        ue = u.expand_as(it)
        enc = self.enc_mlp(torch.relu(torch.cat([it, ue, it * ue], dim=-1)))
        h0 = torch.tanh(self.init_state(torch.cat([u.squeeze(1), enc.mean(dim=1)], dim=-1)))
        return enc, h0

    # -- decoder --------------------------------------------------------------------------------

    def _query(self, h: torch.Tensor, param_delta: dict | None) -> torch.Tensor:
        return _with_delta(self.pointer_query(h), h, param_delta)

    def decode(
        self,
        enc: torch.Tensor,
        h0: torch.Tensor,
        greedy: bool = True,
        generator: torch.Generator | None = None,
        slates=None,
        *,
        param_delta: dict[str, torch.Tensor] | None = None,
        slate_size: int | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick K distinct candidates per row: slates (B, K) int64 and their log-probs (B, K).

        ``greedy``: argmax at each position; otherwise sample (Gumbel-max with ``generator``).
        ``slates``: teacher forcing; the given slates are followed and their per-position
        log-probs returned (differentiable w.r.t. parameters, ``enc`` and ``h0``).
        ``param_delta``: per-row offsets {name: (B, *param.shape)} for the names in
        ``perturbable_parameters()``; ``None`` or zeros reproduce the plain model exactly.
        ``noise``: per-row Gumbel noise (B, K, N) added to the logits before the argmax (see
        :func:`gumbel_noise`), instead of noise drawn from ``generator`` for the whole batch: a
        row's sample then depends on its own noise only, whatever else shares the batch (LAST
        seeds every request on its own). A row of zeros decodes greedily.
        """
        b, n, h = enc.shape
        if h0.shape != (b, h):
            raise ValueError(f"h0 must be ({b}, {h}), got {tuple(h0.shape)}")
        if param_delta:
            unknown = set(param_delta) - set(PERTURBABLE)
            if unknown:
                raise ValueError(f"param_delta has unknown names {sorted(unknown)}")
        if slates is not None:
            slates = as_long(slates)
            if slates.ndim != 2 or slates.shape[0] != b:
                raise ValueError(f"slates must be ({b}, K), got {tuple(slates.shape)}")
            if slates.numel() and (slates.min() < 0 or slates.max() >= n):
                raise ValueError(f"slates hold indices outside [0, {n})")
            srt = slates.sort(dim=1).values
            if (srt[:, 1:] == srt[:, :-1]).any():
                raise ValueError("teacher-forced slates must not repeat a candidate")
            k = slates.shape[1]
        else:
            k = slate_size or self.config.slate_size
        if k > n:
            raise ValueError(f"cannot pick {k} distinct items out of {n} candidates")
        if noise is not None and tuple(noise.shape) != (b, k, n):
            raise ValueError(f"noise must be (B={b}, K={k}, N={n}), got {tuple(noise.shape)}")
        keys = self.pointer_key(enc)  # (B, N, H)
        static = self.static_score(enc).squeeze(-1)  # (B, N)
        scale = 1.0 / math.sqrt(h)
        clip = self.config.logit_clip
        rows = torch.arange(b)
        state = h0
        x = self.start.expand(b, h)
        mask = torch.zeros(b, n, dtype=torch.bool)
        picks, logps = [], []
        for t in range(k):
            state = self.cell(x, state)
            q = self._query(state, param_delta)
            logit = torch.bmm(keys, q.unsqueeze(-1)).squeeze(-1) * scale + static
            logit = clip * torch.tanh(logit / clip)
            logit = logit.masked_fill(mask, float("-inf"))
            logp = torch.log_softmax(logit, dim=-1)
            if slates is not None:
                pick = slates[:, t]
            elif noise is not None:
                pick = (logit + noise[:, t]).argmax(dim=-1)
            elif greedy:
                pick = logit.argmax(dim=-1)
            else:
                u = torch.rand(b, n, generator=generator)
                pick = (logit + gumbel_noise(u)).argmax(dim=-1)
            picks.append(pick)
            logps.append(logp[rows, pick])
            mask = mask.clone()
            mask[rows, pick] = True
            x = enc[rows, pick]
        return torch.stack(picks, dim=1), torch.stack(logps, dim=1)

    def decode_slates(
        self,
        enc: torch.Tensor,
        h0: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        param_delta: dict[str, torch.Tensor] | None = None,
        enc_offset: torch.Tensor | None = None,
        offset_scale: torch.Tensor | None = None,
        slate_size: int | None = None,
    ) -> torch.Tensor:
        """Greedy (or noise-perturbed) slates (M, K), no log-probs, no autograd: the serving path.

        ``enc`` (B, N, H) holds the candidate states of B requests; ``h0`` (M, H) with
        ``M = B * G`` the initial states of G decoding rows per request, request major (row
        ``i * G + g`` belongs to request ``i``). Row ``i * G + g`` decodes over the candidate
        states ``enc[i] + offset_scale[i * G + g] * enc_offset[i]`` when ``enc_offset`` (B, N, H)
        and ``offset_scale`` (M,) are given, else over ``enc[i]``. ``noise`` (M, K, N) and
        ``param_delta`` ({name: (M, ...)}) are per row, as in :meth:`decode`.

        Why a second decoder: LAST decodes G rows per request (the greedy slate and its samples,
        or its step offsets) that share one request's candidates, so the pointer keys are
        computed once per request instead of once per row, and every step scores all G rows of
        a request with one small matrix product instead of G matrix-vector products. Offsets
        reach the keys by linearity (``keys(enc + s d) = keys(enc) + s keys_nobias(d)``). With
        G = 1 and no offset the operations, and so the slates, are exactly :meth:`decode`'s.
        It runs in inference mode (cheaper per operation than ``no_grad``); the slates come
        back as ordinary tensors, usable in autograd afterwards.
        """
        with torch.inference_mode():
            picks = self._decode_slates(enc, h0, noise, param_delta, enc_offset, offset_scale,
                                        slate_size)
        return picks.clone()

    def _decode_slates(self, enc, h0, noise, param_delta, enc_offset, offset_scale,
                       slate_size) -> torch.Tensor:
        b, n, h = enc.shape
        m = h0.shape[0]
        if b == 0 and m == 0:
            return torch.empty(0, slate_size or self.config.slate_size, dtype=torch.int64)
        if b == 0 or m % b or h0.ndim != 2 or h0.shape[1] != h:
            raise ValueError(f"h0 must be (B * G, {h}) with B={b}, got {tuple(h0.shape)}")
        g = m // b
        if (enc_offset is None) != (offset_scale is None):
            raise ValueError("enc_offset and offset_scale go together")
        if param_delta:
            unknown = set(param_delta) - set(PERTURBABLE)
            if unknown:
                raise ValueError(f"param_delta has unknown names {sorted(unknown)}")
        k = slate_size or self.config.slate_size
        if k > n:
            raise ValueError(f"cannot pick {k} distinct items out of {n} candidates")
        if noise is not None and tuple(noise.shape) != (m, k, n):
            raise ValueError(f"noise must be (M={m}, K={k}, N={n}), got {tuple(noise.shape)}")
        cell, pq = self.cell, self.pointer_query
        w_ih, w_hh, b_ih, b_hh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
        keys = F.linear(enc, self.pointer_key.weight)  # (B, N, H)
        static = F.linear(enc, self.static_score.weight, self.static_score.bias).squeeze(-1)
        scale = 1.0 / math.sqrt(h)
        clip = self.config.logit_clip
        if g > 1:
            static = static.repeat_interleave(g, 0)
        enc_flat = enc.reshape(b * n, h)
        base = torch.arange(b).repeat_interleave(g) * n  # first flat candidate of each row
        if enc_offset is not None:
            col = offset_scale.reshape(m, 1).to(enc.dtype)
            dstatic = F.linear(enc_offset, self.static_score.weight).squeeze(-1)
            static = static + col * dstatic.repeat_interleave(g, 0)
            off_flat = enc_offset.reshape(b * n, h)
            keys = torch.cat([keys, F.linear(enc_offset, self.pointer_key.weight)], dim=1)
        keys_t = keys.transpose(1, 2)  # (B, H, N), or (B, H, 2N) with the offset's keys
        state = h0
        x = self.start.expand(m, h)
        mask = torch.zeros(m, n, dtype=torch.bool)
        picks = torch.empty(m, k, dtype=torch.int64)
        for t in range(k):
            state = torch.gru_cell(x, state, w_ih, w_hh, b_ih, b_hh)
            q = _with_delta(F.linear(state, pq.weight, pq.bias), state, param_delta)
            if g == 1 and enc_offset is None:  # exactly decode()'s matrix-vector product
                logit = torch.bmm(keys, q.unsqueeze(-1)).squeeze(-1)
            else:
                both = torch.bmm(q.view(b, g, h), keys_t).view(m, -1)  # one small product
                logit = both if enc_offset is None else both[:, :n] + col * both[:, n:]
            logit = logit * scale + static
            logit = clip * torch.tanh(logit / clip)
            logit.masked_fill_(mask, float("-inf"))
            if noise is not None:
                logit += noise[:, t]
            pick = logit.argmax(dim=-1)
            picks[:, t] = pick
            mask.scatter_(1, pick.unsqueeze(1), True)
            flat = base + pick
            x = enc_flat.index_select(0, flat)
            if enc_offset is not None:
                x = x + col * off_flat.index_select(0, flat)
        return picks

    def slate_log_probs(
        self,
        enc: torch.Tensor,
        h0: torch.Tensor,
        slates: torch.Tensor,
        *,
        param_delta: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Per-position log-probs (B, K) of given slates, the same numbers as teacher-forced
        ``decode`` (up to float rounding) with far fewer recorded operations.

        Once the slate is known, the GRU inputs are known too, so only the recurrence is a loop
        (one cell call per position); the pointer scores, masks and softmax of all positions
        are one batched computation. Why: LAST differentiates these log-probs for every
        request, and autograd's cost is per recorded operation, not per number.
        """
        b, n, h = enc.shape
        slates = torch.as_tensor(slates, dtype=torch.int64)
        k = slates.shape[1]
        rows = torch.arange(b).unsqueeze(1)
        inputs = torch.cat([self.start.expand(b, 1, h), enc[rows, slates[:, :-1]]], dim=1)
        state, states = h0, []
        for t in range(k):
            state = self.cell(inputs[:, t], state)
            states.append(state)
        st = torch.stack(states, dim=1)  # (B, K, H)
        q = _with_delta(self.pointer_query(st), st, param_delta)
        keys = self.pointer_key(enc)
        static = self.static_score(enc).squeeze(-1)
        logit = torch.bmm(q, keys.transpose(1, 2)) / math.sqrt(h) + static.unsqueeze(1)
        clip = self.config.logit_clip
        logit = clip * torch.tanh(logit / clip)  # (B, K, N)
        earlier = torch.ones(k, k, dtype=torch.bool).tril(-1)  # [t, j]: pick j came before t
        mask = torch.zeros(b, k, n, dtype=torch.bool)
        mask.scatter_(2, slates.unsqueeze(1).expand(b, k, k), earlier.expand(b, k, k))
        logp = torch.log_softmax(logit.masked_fill(mask, float("-inf")), dim=-1)
        return logp.gather(2, slates.unsqueeze(2)).squeeze(2)

    # -- conveniences ---------------------------------------------------------------------------

    def greedy(self, user, candidates, candidate_ids=None) -> torch.Tensor:
        """Serving-time slate (B, K): argmax at every position."""
        enc, h0 = self.encode(user, candidates, candidate_ids)
        return self.decode_slates(enc, h0)

    def sample(
        self, user, candidates, candidate_ids=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A sampled slate (B, K) (exploration / training); seeded through ``generator``."""
        enc, h0 = self.encode(user, candidates, candidate_ids)
        return self.decode(enc, h0, greedy=False, generator=generator)[0]

    def log_prob(self, user, candidates, candidate_ids, slates) -> torch.Tensor:
        """Log-probability (B,) of given slates under the policy (differentiable)."""
        enc, h0 = self.encode(user, candidates, candidate_ids)
        return self.decode(enc, h0, slates=slates)[1].sum(dim=1)

    def perturbable_parameters(self) -> list[str]:
        """Names of the parameters a Δθ perturbation touches (the pointer query projection).

        Small (H*H + H numbers), on the decoder's output side, so an offset changes which
        candidate is picked at every position without retouching the encoder; ``decode``
        accepts per-row offsets of exactly these via ``param_delta``.
        """
        return list(PERTURBABLE)
