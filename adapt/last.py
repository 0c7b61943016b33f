"""LAST: per-request perturbation of the slate generator at serving time (DESIGN §4).

Reference: Y. Wang et al., "Do Not Wait: Learning Re-Ranking Model Without User Feedback At
Serving Time in E-Commerce" (LAST), RecSys 2024; official code github.com/lyingCS/LAST.

For each request of a batch:

1. **Base slate and controls**: one batched decode gives the generator's greedy slate and
   ``resamples`` slates sampled from it (per-request seeded Gumbel noise, so a request gets the
   same samples whatever batch, chunk or actor it is processed in). The greedy slate's
   per-position log-probabilities are then recomputed with autograd on
   (``SlateGenerator.slate_log_probs``: teacher-forced, batched over positions) with respect to
   fresh leaf tensors; the generator's parameters are never modified.
2. **Judge**: the judge (the evaluator, or an error-compensated evaluator) gives per-position
   click values of the greedy slate and the resamples in one pass.
3. **Search direction** ``g``: the gradient of ``J = sum_k A_k log p(a_k | a_<k)`` for the
   greedy slate, with the advantage ``A_k = r_k(greedy) - mean_j r_k(resample_j)`` (a
   per-position baseline from the controls; the slate's own mean when there are none). The
   greedy slate already maximises its own log-probability, so what moves a slate is a negative
   advantage where the greedy pick does worse than the policy's typical pick there.
4. **Candidates**: for each step ``s`` in ``steps``, one greedy decode under the offset
   ``x' = x + s * 0.01 * ||x|| * g / ||g||`` (norms per request and per tensor):
   ``mode="activation"`` (the official code) offsets the decoder's initial state and the encoder
   states; ``mode="parameter"`` (the paper's Δθ) offsets the pointer-query parameters, per row;
   ``mode="serial"`` takes ``serial_steps`` ascent steps on one activation offset, re-judging
   after each. Steps are signed: a negative step moves against the direction (kept as a check
   that the sign matters). All offsets of all requests are one batched decode.
5. **Selection**: all candidates are judged (per-position values, summed; each distinct slate of
   a request once, a repeat scoring exactly as its first copy); the best is served.
   The greedy slate is candidate 0 and wins ties (a candidate must beat it by more than
   ``min_gain``). Selection never sees labels or the world's truth.

Nothing is kept between requests: the offsets are thrown away, the deployed generator never
changes. With ``steps=()`` the search is best-of-n: the greedy slate and ``resamples`` samples,
no gradient (LAST's control).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..evaluator.model import ListwiseEvaluator
from ..generator.model import SlateGenerator
from .last_result import LastResult
from .requests import budget_split, check_index, check_requests, request_noise

MODES = ("activation", "parameter", "serial")
DEFAULT_STEPS = (6.0, 7.0, 8.0, 9.0)
_EPS = 1e-12

Judge = Callable[..., torch.Tensor]

__all__ = ["DEFAULT_STEPS", "MODES", "LastSearch", "select_best"]


def _per_request(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of each request's slice of ``x`` (B, ...), shaped to broadcast against it."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))


def _unit_offset(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``0.01 * ||x|| * g / ||g||`` per request: the offset of a step of size 1."""
    return 0.01 * _per_request(x) * grad / (_per_request(grad) + _EPS)


def first_copy(slates: torch.Tensor) -> torch.Tensor:
    """(B, C): for each candidate of ``slates`` (B, C, K), the first column of its request that
    holds the same slate (itself when it is the first)."""
    eq = (slates.unsqueeze(2) == slates.unsqueeze(1)).all(dim=-1)  # [i, a, c]: a's == c's
    return eq.to(torch.uint8).argmax(dim=2)


def select_best(slates: torch.Tensor, scores: torch.Tensor, min_gain: float = 0.0):
    """Winner per request among candidate ``slates`` (B, C, K) with ``scores`` (B, C); column 0
    is the greedy slate. Every candidate gets exactly the score of the first column holding
    the same slate (so a repeat of the greedy slate scores as the greedy, and which copy of a
    slate wins never depends on float rounding); a candidate wins only if it beats column 0
    by more than ``min_gain``. Returns (winner (B,), scores)."""
    b = slates.shape[0]
    scores = scores.gather(1, first_copy(slates))
    winner = torch.zeros(b, dtype=torch.int64)
    if scores.shape[1] > 1:
        best_score, best = scores[:, 1:].max(dim=1)
        winner = torch.where(best_score > scores[:, 0] + min_gain, best + 1, winner)
    return winner, scores


class LastSearch:
    """Serving-time perturbation search around a frozen generator (see the module docstring).

    ``judge(user, items, item_ids) -> (M, K)`` per-position values; default: the evaluator's
    click probabilities. ``seed``: root of every request's sampler.
    """

    def __init__(
        self,
        generator: SlateGenerator,
        evaluator: ListwiseEvaluator,
        *,
        mode: str = "activation",
        steps: Sequence[float] = DEFAULT_STEPS,
        resamples: int = 4,
        serial_steps: int = 3,
        serial_step: float = 3.0,
        judge: Judge | None = None,
        seed: int = 0,
        min_gain: float = 0.0,
    ):
        if not isinstance(generator, SlateGenerator):
            raise ValueError(f"generator must be a SlateGenerator, got {type(generator).__name__}")
        if not isinstance(evaluator, ListwiseEvaluator):
            raise ValueError(
                f"evaluator must be a ListwiseEvaluator, got {type(evaluator).__name__}"
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        try:
            steps = tuple(float(s) for s in steps)
        except (TypeError, ValueError) as e:
            raise ValueError(f"steps must be a sequence of numbers, got {steps!r}") from e
        if any(not math.isfinite(s) or s == 0 for s in steps):
            raise ValueError(f"step sizes must be finite and non-zero (signed), got {steps}")
        for name, value in (("resamples", resamples), ("serial_steps", serial_steps)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        serial_step, min_gain = float(serial_step), float(min_gain)
        if not (math.isfinite(serial_step) and serial_step != 0):
            raise ValueError(f"serial_step must be finite and non-zero, got {serial_step!r}")
        if not (math.isfinite(min_gain) and min_gain >= 0):
            raise ValueError(f"min_gain must be finite and >= 0, got {min_gain!r}")
        check_index("seed", seed)
        if judge is not None and not callable(judge):
            raise ValueError("judge must be callable: judge(user, items, item_ids) -> (M, K)")
        gc, ec = generator.config, evaluator.config
        if (gc.user_dim, gc.item_dim) != (ec.user_dim, ec.item_dim):
            raise ValueError(
                f"generator (user_dim={gc.user_dim}, item_dim={gc.item_dim}) and evaluator "
                f"(user_dim={ec.user_dim}, item_dim={ec.item_dim}) disagree on feature sizes"
            )
        if gc.slate_size > ec.slate_size:
            raise ValueError(
                f"the generator makes slates of {gc.slate_size}, the evaluator knows only "
                f"{ec.slate_size} positions"
            )
        self.generator = generator
        self.evaluator = evaluator
        self.mode = mode
        self.steps = steps if mode != "serial" else ()
        self.resamples = int(resamples)
        self.serial_steps = int(serial_steps) if mode == "serial" else 0
        self.serial_step = serial_step
        self.judge = judge
        self.seed = int(seed)
        self.min_gain = min_gain
        self.slate_size = gc.slate_size
        self.need_ids = bool(gc.use_ids or ec.use_ids)

    @classmethod
    def with_budget(cls, generator, evaluator, p: int, **kwargs) -> LastSearch:
        """A search with ``P`` candidates split by :func:`budget_split` (activation mode)."""
        steps, resamples = budget_split(p)
        return cls(generator, evaluator, steps=steps, resamples=resamples, **kwargs)

    def options(self) -> dict:
        """Keyword arguments that rebuild this search (its judge excluded)."""
        return {"mode": self.mode, "steps": self.steps, "resamples": self.resamples,
                "serial_steps": self.serial_steps or 3, "serial_step": self.serial_step,
                "seed": self.seed, "min_gain": self.min_gain}

    @property
    def n_offsets(self) -> int:
        """Perturbed candidates per request (step offsets, or serial steps)."""
        return self.serial_steps if self.mode == "serial" else len(self.steps)

    @property
    def n_candidates(self) -> int:
        """P: candidates per request besides the greedy slate."""
        return self.n_offsets + self.resamples

    @property
    def labels(self) -> tuple[str, ...]:
        if self.mode == "serial":
            offsets = [f"serial{t + 1}@{self.serial_step:g}" for t in range(self.serial_steps)]
        else:
            offsets = [f"{self.mode}@{s:g}" for s in self.steps]
        return ("greedy", *offsets, *(f"resample{j}" for j in range(self.resamples)))

    def search(
        self, user, candidates, candidate_ids=None, batch_index: int = 0, *, row_offset: int = 0
    ) -> LastResult:
        """Serve a batch: user (B, Fu), candidates (B, N, Fi), candidate_ids (B, N).

        ``batch_index`` and ``row_offset`` (the first row's index within the caller's batch,
        for a chunk of a larger batch) seed request ``i``'s sampler as
        ``(seed, batch_index, row_offset + i)``.
        """
        t_start = time.perf_counter()
        batch_index = check_index("batch_index", batch_index)
        row_offset = check_index("row_offset", row_offset)
        gc = self.generator.config
        user, cand, ids = check_requests(
            user, candidates, candidate_ids, user_dim=gc.user_dim, item_dim=gc.item_dim,
            slate_size=self.slate_size, need_ids=self.need_ids)
        ev_training = self.evaluator.training
        if ev_training:  # judge in eval mode (no dropout)
            self.evaluator.eval()
        try:
            result = self._search(user, cand, ids, batch_index, row_offset)
        finally:
            if ev_training:
                self.evaluator.train()
        result.timing["total"] = time.perf_counter() - t_start
        return result

    __call__ = search

    # -- internals -------------------------------------------------------------------------------

    def _values(self, user, cand, ids, slates, req) -> torch.Tensor:
        """Per-position judge values (M, K) of ``slates`` (M, K) of requests ``req`` (M,)."""
        items = cand[req.unsqueeze(1), slates]
        item_ids = None if ids is None else ids[req.unsqueeze(1), slates]
        u = user[req]
        if self.judge is None:
            with torch.inference_mode():  # cheaper per operation; the clone leaves it
                out = self.evaluator(u, items, item_ids)
            return out.clone()
        out = torch.as_tensor(self.judge(u, items, item_ids)).detach().float()
        if tuple(out.shape) != tuple(slates.shape):
            raise ValueError(f"judge must return per-position values {tuple(slates.shape)}, "
                             f"got {tuple(out.shape)}")
        return out

    def _unique_values(self, user, cand, ids, slates, known=None) -> torch.Tensor:
        """Per-position values (B, C - C0, K) of the columns ``C0..`` of ``slates`` (B, C, K)
        whose first ``C0`` columns are already judged (``known`` (B, C0, K), or none).

        Only slates that no earlier column of the same request already holds are judged (step
        offsets often land on the same slate); a repeat gets the values of its first copy,
        which the judge, deterministic per row, would have given it anyway."""
        b, c, k = slates.shape
        c0 = 0 if known is None else known.shape[1]
        first = first_copy(slates)[:, c0:]  # (B, C - C0)
        req, col = (first == torch.arange(c0, c)).nonzero(as_tuple=True)
        col = col + c0
        values = slates.new_empty((b, c, k), dtype=torch.float32)
        if c0:
            values[:, :c0] = known
        if len(req):
            values[req, col] = self._values(user, cand, ids, slates[req, col], req).float()
        return values[torch.arange(b).unsqueeze(1), first]

    @staticmethod
    def _advantage(v_base: torch.Tensor, v_res: torch.Tensor | None) -> torch.Tensor:
        if v_res is not None and v_res.shape[1] > 0:
            return v_base - v_res.mean(dim=1)
        return v_base - v_base.mean(dim=1, keepdim=True)

    @staticmethod
    def _direction(advantage, logp, leaves) -> tuple[torch.Tensor, ...]:
        """Gradient of ``sum_k A_k log p(a_k)`` w.r.t. ``leaves`` (activations or deltas)."""
        with torch.enable_grad():
            objective = (advantage.detach() * logp).sum()
        return torch.autograd.grad(objective, leaves)

    def _first_decode(self, enc, h0, noise, b: int):
        """Greedy slate (B, K) and resamples (B * R, K) in one no-grad decode; then, when a
        direction is needed, the greedy slate's log-probs (B, K) recomputed with autograd on
        w.r.t. fresh leaves (activations, or per-row parameter offsets)."""
        gen, r = self.generator, self.resamples
        if r:  # per request: the greedy row (zero noise), then its r samples
            g = r + 1
            rows = torch.zeros(b, g, *noise.shape[1:])
            rows[:, 1:] = noise.view(b, r, *noise.shape[1:])
            slates = gen.decode_slates(enc, h0.repeat_interleave(g, 0),
                                       noise=rows.view(b * g, *noise.shape[1:]))
            slates = slates.view(b, g, self.slate_size)
            base, res = slates[:, 0], slates[:, 1:].reshape(b * r, self.slate_size)
        else:
            base, res = gen.decode_slates(enc, h0), h0.new_empty(0, self.slate_size,
                                                                  dtype=torch.int64)
        if self.n_offsets == 0:
            return base, res, None, []
        with torch.enable_grad():
            if self.mode == "parameter":
                params = dict(gen.named_parameters())
                names = gen.perturbable_parameters()
                leaves = [torch.zeros((b, *params[nm].shape), requires_grad=True) for nm in names]
                logp = gen.slate_log_probs(enc, h0, base,
                                           param_delta=dict(zip(names, leaves, strict=True)))
            else:
                leaves = [enc.detach().requires_grad_(True), h0.detach().requires_grad_(True)]
                logp = gen.slate_log_probs(*leaves, base)
        return base, res, logp, leaves

    def _search(self, user, cand, ids, batch_index: int, row_offset: int) -> LastResult:
        gen, b, n, k = self.generator, user.shape[0], cand.shape[1], self.slate_size
        s_n, r_n = self.n_offsets, self.resamples
        timing: dict[str, float] = {}
        t = time.perf_counter()
        arange_b = torch.arange(b)
        with torch.no_grad():
            enc, h0 = gen.encode(user, cand, ids)
            noise = request_noise(self.seed, batch_index, row_offset, b, r_n, k, n)
            base, res, logp, leaves = self._first_decode(enc, h0, noise, b)
            timing["decode"] = time.perf_counter() - t

            t = time.perf_counter()
            first = torch.cat([base.unsqueeze(1), res.view(b, r_n, k)], dim=1)
            v_all = self._unique_values(user, cand, ids, first)
            v_base, v_res = v_all[:, 0], v_all[:, 1:]
            timing["judge"] = time.perf_counter() - t

            t = time.perf_counter()
            if s_n == 0:
                off_slates, v_off = base.new_empty(b, 0, k), v_base.new_empty(b, 0, k)
            elif self.mode == "serial":
                off_slates, v_off = self._serial(user, cand, ids, enc, h0, logp, leaves,
                                                 v_base, v_res)
            else:
                grads = self._direction(self._advantage(v_base, v_res), logp, leaves)
                off_slates = self._offset_decode(enc, h0, grads, leaves, b).view(b, s_n, k)
                v_off = self._unique_values(user, cand, ids, torch.cat([first, off_slates], 1),
                                            v_all)
            timing["candidates"] = time.perf_counter() - t

        all_slates = torch.cat([base.unsqueeze(1), off_slates, res.view(b, r_n, k)], dim=1)
        all_scores = torch.cat([v_base.sum(-1, keepdim=True), v_off.sum(-1),
                                v_res.sum(-1)], dim=1).float()
        winner, all_scores = select_best(all_slates, all_scores, self.min_gain)
        return LastResult(
            slates=all_slates[arange_b, winner].numpy().astype(np.int64, copy=True),
            scores=all_scores[arange_b, winner].numpy().copy(),
            base_slates=base.numpy().astype(np.int64, copy=True),
            base_scores=all_scores[:, 0].numpy().copy(),
            winner=winner.numpy().copy(),
            candidate_scores=all_scores.numpy().copy(),
            labels=self.labels,
            timing=timing,
            candidate_slates=all_slates.numpy().astype(np.int64, copy=True),
        )

    def _offset_decode(self, enc, h0, grads, leaves, b: int) -> torch.Tensor:
        """Greedy slates (B * S, K) under every step offset, request major."""
        gen, s_n = self.generator, len(self.steps)
        col = torch.tensor(self.steps, dtype=torch.float32).repeat(b)
        if self.mode == "parameter":
            params = dict(gen.named_parameters())
            pd = {}
            for nm, g in zip(gen.perturbable_parameters(), grads, strict=True):
                u = _unit_offset(g, params[nm].detach().expand_as(g)).repeat_interleave(s_n, 0)
                pd[nm] = u * col.view(-1, *([1] * (u.ndim - 1)))
            return gen.decode_slates(enc, h0.repeat_interleave(s_n, 0), param_delta=pd)
        d_enc = _unit_offset(grads[0], enc)
        d_h0 = _unit_offset(grads[1], h0).repeat_interleave(s_n, 0)
        h = h0.repeat_interleave(s_n, 0) + col.view(-1, 1) * d_h0
        return gen.decode_slates(enc, h, enc_offset=d_enc, offset_scale=col)

    def _serial(self, user, cand, ids, enc, h0, logp, leaves, v_base, v_res):
        """Serial ascent on one activation offset: slates (B, T, K) and values (B, T, K)."""
        b = user.shape[0]
        arange_b = torch.arange(b)
        e, h, values, cur_logp, cur_leaves = enc, h0, v_base, logp, leaves
        slates, vals = [], []
        for _ in range(self.serial_steps):
            g_enc, g_h0 = self._direction(self._advantage(values, v_res), cur_logp, cur_leaves)
            e = e + self.serial_step * _unit_offset(g_enc, enc)
            h = h + self.serial_step * _unit_offset(g_h0, h0)
            slate = self.generator.decode_slates(e, h)
            cur_leaves = [e.detach().requires_grad_(True), h.detach().requires_grad_(True)]
            with torch.enable_grad():
                cur_logp = self.generator.slate_log_probs(*cur_leaves, slate)
            values = self._values(user, cand, ids, slate, arange_b)
            slates.append(slate)
            vals.append(values)
        return torch.stack(slates, dim=1), torch.stack(vals, dim=1)
