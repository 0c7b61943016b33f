"""LAST: per-request perturbation of the slate generator at serving time (DESIGN §4).

Reference: Y. Wang, Z. Li, C. Zhang, S. Chen, X. Zhang, J. Xu, Q. Lin, "Do Not Wait: Learning
Re-Ranking Model Without User Feedback At Serving Time in E-Commerce" (LAST), 2024; official
code github.com/lyingCS/LAST (``librerank/LAST_generator.py``).

For each request of a batch:

1. **Base slate**: the generator's greedy slate (what would be served without LAST).
2. **Search direction** ``g``: the gradient of ``J = sum_k A_k * log p(a_k | a_<k)``, the
   advantage-weighted log-probability of the base slate, with respect to the perturbed
   quantities. The log-probs are those of the greedy decode itself, recorded with autograd on
   (bitwise the same numbers as the teacher-forced ``decode(enc, h0, slates=base)``, without a
   second decoder pass). Gradients are taken with ``torch.autograd.grad`` with respect to fresh
   activation tensors (``enc``, ``h0``) or per-row ``param_delta`` tensors only: the generator's
   parameters are never modified, never get a ``.grad``, and their ``requires_grad`` flags are
   left alone.

   Advantage (default ``advantage="click"``, ``baseline="resample"``)::

       A_k = r_k(base) - mean_j r_k(resample_j)

   where ``r_k`` is the evaluator's predicted click at position ``k`` and the ``resample_j``
   are the unperturbed, seeded samples of the same request (they are candidates anyway, so the
   baseline costs no extra generation, and their evaluator pass is shared with the base
   slate's). Why: the greedy slate already maximises its own log-probability, so pushing *up*
   a pick changes nothing; what moves the slate is a *negative* advantage at the positions
   where the greedy pick does worse than what the policy typically places there, and the
   gradient then shifts that position towards the policy's runner-ups. A per-position policy
   baseline removes position bias (lower slots always get fewer clicks, so a mean over the
   slate's own positions, ``baseline="slate"``, blames the bottom); with ``resamples=0`` the
   baseline falls back to that slate mean. ``advantage="reward_to_go"`` uses
   ``G_k = sum_{i >= k} r_i`` instead of ``r_k`` (the REINFORCE credit, as in the official
   code's discounted labels); on the synthetic world (tests/conftest_models.py, 400 held-out
   requests, imitation-trained generator) it gained less, by the evaluator (+0.16 vs +0.23
   expected clicks over greedy) and by the hidden truth (-0.03 vs +0.01), probably because
   the large credits of the top positions dominate the direction; so ``click`` is the default.
   (The official code differs: it adds ``+s * grad`` of its loss ``-sum_k G_k log p``, i.e.
   moves *away* from the base slate in proportion to its non-negative rewards, with no
   baseline, and samples under each offset; here each offset's greedy slate is a candidate.)
3. **Candidates**: ``P = len(steps) + resamples`` (``serial_steps + resamples`` in serial
   mode) slates besides the greedy one:

   - ``mode="activation"`` (default, the official code): ``x' = x + s * 0.01 * ||x|| * g/||g||``
     on the decoder's initial state ``h0`` and on the encoder states ``enc``, norms per request
     and per tensor (L2 over ``h0``'s H numbers, Frobenius over ``enc``'s N x H), for every
     ``s`` in ``steps`` (default 6, 7, 8, 9: offsets of 6-9 % of the activation's norm). This
     is the official code's rule (``tf.norm``). ``scale="elementwise"`` uses
     ``s * 0.01 * |x| * g/||g||`` (elementwise magnitude) instead: its offsets are about
     ``1/sqrt(size)`` as large and rarely change a slate (kept for comparison).
   - ``mode="parameter"`` (the paper's Δθ): the same rule on the pointer-query parameters
     (``generator.perturbable_parameters()``), as per-row ``param_delta``. At the same step
     sizes it changes slates less often than the activation offsets (on the synthetic world the
     offsets won about 20 % of the requests against about 80 %): larger ``steps`` suit it.
   - ``mode="serial"``: ``serial_steps`` ascent steps of size ``serial_step`` on one
     activation offset, the gradient recomputed (and the slate re-judged) at each step; the
     slate after each step is a candidate. Inherently sequential: ~``serial_steps`` times the
     cost of one gradient. ``steps`` is not used.
   - ``resamples`` unperturbed slates sampled from the generator (controls), seeded per
     request from ``(seed, batch_index, row)`` only, so a request gets the same samples
     whatever batch or chunk it is processed in (local and Ray backends agree).

   All perturbed candidates of all requests are ONE batched decode (``B * S`` rows, request
   major, via ``repeat_interleave``); all resamples are one batched sampling pass.
4. **Selection**: every candidate and the greedy slate are scored by ``scorer`` (default: the
   evaluator's ``score``, the sum of predicted clicks); the best is served. The greedy slate
   is candidate 0 and wins ties (a candidate is served only if it beats the greedy slate by
   more than ``min_gain``), so the served score is never below the greedy one. Selection
   never sees labels or the environment's truth.

``scorer(user, items, item_ids)`` may return ``(M,)`` slate scores (used for selection only;
the advantage then still uses the evaluator's per-position clicks) or ``(M, K)`` per-position
values (used for both the advantage and, summed, the selection), e.g. a compensated
(error-memory-corrected) evaluator.

Nothing is kept between requests: the offsets are thrown away, the deployed generator never
changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..evaluator.batch import as_float, as_long
from ..evaluator.model import ListwiseEvaluator
from ..generator.model import SlateGenerator

MODES = ("activation", "parameter", "serial")
ADVANTAGES = ("reward_to_go", "click")
BASELINES = ("resample", "slate")
SCALES = ("norm", "elementwise")
DEFAULT_STEPS = (6.0, 7.0, 8.0, 9.0)
_EPS = 1e-12
_MASK64 = (1 << 64) - 1

Scorer = Callable[..., torch.Tensor]

__all__ = [
    "DEFAULT_STEPS",
    "LastResult",
    "LastSearch",
    "budget_split",
    "check_requests",
    "request_seed",
]


# -- results -------------------------------------------------------------------------------------


@dataclass
class LastResult:
    """What LAST served for a batch of B requests.

    ``slates`` (B, K) int64: served slates (indices into each request's candidates).
    ``scores`` (B,): scorer score of the served slates; ``base_scores`` (B,): of the greedy.
    ``winner`` (B,) int64: index into ``labels`` of the served candidate; **0 is the
    unperturbed greedy slate** (served when nothing beats it), ``1..P`` the candidates in the
    order of ``labels`` (step offsets / serial steps first, then resamples).
    ``candidate_scores`` (B, P + 1): every candidate's score (column 0: greedy); a candidate
    whose slate equals the greedy slate gets exactly the greedy's score.
    ``timing``: seconds per phase of the call (``total`` always present).
    """

    slates: np.ndarray
    scores: np.ndarray
    base_slates: np.ndarray
    base_scores: np.ndarray
    winner: np.ndarray
    candidate_scores: np.ndarray
    labels: tuple[str, ...]
    timing: dict[str, float] = field(default_factory=dict)

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
        )


# -- helpers -------------------------------------------------------------------------------------


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def request_seed(seed: int, batch_index: int, row: int) -> int:
    """Seed (< 2**63) of one request's sampler, from (seed, batch_index, row) only."""
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(batch_index) & _MASK64))
    h = _splitmix64(h ^ (int(row) & _MASK64))
    return h >> 1


def check_index(name: str, value) -> int:
    """``value`` as an int >= 0 (bools refused), or a ``ValueError`` naming ``name``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def budget_split(p: int, low: float = 6.0, high: float = 9.0) -> tuple[tuple[float, ...], int]:
    """A candidate budget ``P`` as (step sizes, resamples): ``P - P // 2`` offsets evenly
    spaced in ``[low, high]`` plus ``P // 2`` resamples (``P = 8`` gives the defaults)."""
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 0:
        raise ValueError(f"the candidate budget P must be an int >= 0, got {p!r}")
    n_steps, resamples = int(p) - int(p) // 2, int(p) // 2
    if n_steps == 0:
        return (), resamples
    if n_steps == 1:
        return (float(high),), resamples
    return tuple(float(s) for s in np.linspace(low, high, n_steps)), resamples


def check_requests(
    user,
    candidates,
    candidate_ids,
    *,
    user_dim: int,
    item_dim: int,
    slate_size: int,
    need_ids: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate a request batch; return float32/int64 tensors or raise a clear ValueError."""
    try:
        user, candidates = as_float(user), as_float(candidates)
    except (TypeError, ValueError) as e:
        raise ValueError(f"user/candidates must be numeric arrays ({e})") from e
    if user.ndim != 2 or user.shape[1] != user_dim:
        raise ValueError(f"user must be (B, {user_dim}), got shape {tuple(user.shape)}")
    b = user.shape[0]
    if candidates.ndim != 3 or candidates.shape[0] != b or candidates.shape[2] != item_dim:
        raise ValueError(
            f"candidates must be (B={b}, N, {item_dim}), got shape {tuple(candidates.shape)}"
        )
    n = candidates.shape[1]
    if n < slate_size:
        raise ValueError(f"{n} candidates cannot fill a slate of {slate_size}")
    if not bool(torch.isfinite(user).all()):
        raise ValueError("user features contain NaN or infinite values")
    if not bool(torch.isfinite(candidates).all()):
        raise ValueError("candidate features contain NaN or infinite values")
    ids = None
    if candidate_ids is not None:
        if isinstance(candidate_ids, torch.Tensor):
            floating = candidate_ids.is_floating_point()
        else:
            floating = np.issubdtype(np.asarray(candidate_ids).dtype, np.floating)
        if floating:
            raise ValueError("candidate_ids must be integers, got a floating-point array")
        ids = as_long(candidate_ids)
        if tuple(ids.shape) != (b, n):
            raise ValueError(f"candidate_ids must be ({b}, {n}), got shape {tuple(ids.shape)}")
    elif need_ids:
        raise ValueError("candidate_ids are required (the models use catalog ids)")
    return user, candidates, ids


def _reward_to_go(r: torch.Tensor) -> torch.Tensor:
    return r.flip(-1).cumsum(-1).flip(-1)


def _decode_with_noise(
    gen: SlateGenerator, enc: torch.Tensor, h0: torch.Tensor, gumbel: torch.Tensor
) -> torch.Tensor:
    """Sampled slates (M, K) from per-row Gumbel noise ``gumbel`` (M, K, N).

    The sampling branch of ``SlateGenerator.decode`` (``argmax(logit - log(-log u))``) with the
    noise supplied per row instead of drawn from one generator for the whole batch, so a
    request's samples do not depend on which other rows share its batch (chunking across
    backends). ``tests/test_last.py`` pins it to ``decode(greedy=False)`` bit for bit.
    """
    b, n, h = enc.shape
    k = gumbel.shape[1]
    keys = gen.pointer_key(enc)
    static = gen.static_score(enc).squeeze(-1)
    scale = 1.0 / math.sqrt(h)
    clip = gen.config.logit_clip
    rows = torch.arange(b)
    state = h0
    x = gen.start.expand(b, h)
    mask = torch.zeros(b, n, dtype=torch.bool)
    picks = []
    for t in range(k):
        state = gen.cell(x, state)
        q = gen._query(state, None)
        logit = torch.bmm(keys, q.unsqueeze(-1)).squeeze(-1) * scale + static
        logit = clip * torch.tanh(logit / clip)
        logit = logit.masked_fill(mask, float("-inf"))
        pick = (logit + gumbel[:, t]).argmax(dim=-1)
        picks.append(pick)
        mask = mask.clone()
        mask[rows, pick] = True
        x = enc[rows, pick]
    return torch.stack(picks, dim=1)


def _per_request(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of each request's slice of ``x`` (B, ...), shaped to broadcast against it."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))


# -- the search ----------------------------------------------------------------------------------


class LastSearch:
    """Serving-time perturbation search around a frozen generator (see the module docstring).

    ``mode``: "activation" | "parameter" | "serial". ``steps``: offset sizes in percent of the
    perturbed tensor's norm (activation / parameter modes). ``resamples``: unperturbed seeded
    samples added as controls. ``serial_steps``/``serial_step``: number and size of the ascent
    steps of serial mode. ``scorer``: slate scorer for the selection (default: the evaluator's
    ``score``). ``seed``: root of every request's sampler. ``advantage``/``baseline``: see the
    module docstring. ``scale``: "norm" (official) or "elementwise". ``min_gain``: a candidate
    is served only if it beats the greedy slate's score by more than this. ``batched=False``:
    generate and score the candidates one after another (for benchmarks; same results).
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
        scorer: Scorer | None = None,
        seed: int = 0,
        advantage: str = "click",
        baseline: str = "resample",
        scale: str = "norm",
        min_gain: float = 0.0,
        batched: bool = True,
    ):
        if not isinstance(generator, SlateGenerator):
            raise ValueError(f"generator must be a SlateGenerator, got {type(generator).__name__}")
        if not isinstance(evaluator, ListwiseEvaluator):
            raise ValueError(
                f"evaluator must be a ListwiseEvaluator, got {type(evaluator).__name__}"
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        for name, value, allowed in (
            ("advantage", advantage, ADVANTAGES),
            ("baseline", baseline, BASELINES),
            ("scale", scale, SCALES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        try:
            steps = tuple(float(s) for s in steps)
        except (TypeError, ValueError) as e:
            raise ValueError(f"steps must be a sequence of numbers, got {steps!r}") from e
        if any(not math.isfinite(s) or s <= 0 for s in steps):
            raise ValueError(f"step sizes must be finite and > 0, got {steps}")
        for name, value in (("resamples", resamples), ("serial_steps", serial_steps)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(
                    f"{name} must be >= 0 (a negative count would make the candidate budget "
                    f"P < 0), got {value}"
                )
        try:
            serial_step, min_gain = float(serial_step), float(min_gain)
        except (TypeError, ValueError) as e:
            raise ValueError(f"serial_step and min_gain must be numbers ({e})") from e
        if not (math.isfinite(serial_step) and serial_step > 0):
            raise ValueError(f"serial_step must be finite and > 0, got {serial_step!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if not (math.isfinite(min_gain) and min_gain >= 0):
            raise ValueError(f"min_gain must be finite and >= 0, got {min_gain!r}")
        if scorer is not None and not callable(scorer):
            raise ValueError("scorer must be callable: scorer(user, items, item_ids) -> (B,)")
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
        self.serial_step = float(serial_step)
        self.scorer = scorer
        self.seed = int(seed)
        self.advantage = advantage
        self.baseline = baseline
        self.scale = scale
        self.min_gain = float(min_gain)
        self.batched = bool(batched)
        self.slate_size = gc.slate_size
        self.need_ids = bool(gc.use_ids or ec.use_ids)

    # -- public ----------------------------------------------------------------------------------

    @classmethod
    def with_budget(cls, generator, evaluator, p: int, **kwargs) -> LastSearch:
        """A search with ``P`` candidates split by :func:`budget_split` (activation mode)."""
        steps, resamples = budget_split(p)
        return cls(generator, evaluator, steps=steps, resamples=resamples, **kwargs)

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

        ``batch_index`` and ``row_offset`` (the first row's index within the batch, for a chunk
        of a larger batch) seed each request's sampler as ``(seed, batch_index, row_offset+i)``.
        """
        t_start = time.perf_counter()
        batch_index = check_index("batch_index", batch_index)
        row_offset = check_index("row_offset", row_offset)
        gc = self.generator.config
        user, cand, ids = check_requests(
            user,
            candidates,
            candidate_ids,
            user_dim=gc.user_dim,
            item_dim=gc.item_dim,
            slate_size=self.slate_size,
            need_ids=self.need_ids,
        )
        # judge in eval mode (no dropout); .eval() walks every submodule, so only when needed
        ev_training = self.evaluator.training
        if ev_training:
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

    def _gumbel(self, b: int, n: int, batch_index: int, row_offset: int) -> torch.Tensor:
        """Gumbel noise (B * R, K, N) for the resamples, drawn per request."""
        r, k = self.resamples, self.slate_size
        g = torch.Generator()
        out = torch.empty(b, r, k, n)
        for i in range(b):
            g.manual_seed(request_seed(self.seed, batch_index, row_offset + i))
            out[i] = torch.rand((r, k, n), generator=g)
        # same transform as SlateGenerator.decode's sampling branch
        return -torch.log(-torch.log(out.clamp_(1e-10, 1.0 - 1e-7))).view(b * r, k, n)

    def _judge(self, user, cand, ids, slates, req) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(per-position values (M, K) or None, scores (M,)) of ``slates`` (M, K) whose
        requests are ``req`` (M,); the per-position values are what the advantage uses."""
        items = cand[req.unsqueeze(1), slates]
        item_ids = None if ids is None else ids[req.unsqueeze(1), slates]
        u = user[req]
        if self.scorer is None:
            probs = self.evaluator(u, items, item_ids)
            return probs, probs.sum(dim=-1)
        out = as_float(self.scorer(u, items, item_ids)).detach()
        m, k = slates.shape
        if tuple(out.shape) == (m, k):
            return out, out.sum(dim=-1)
        if tuple(out.shape) != (m,):
            raise ValueError(f"scorer must return ({m},) or ({m}, {k}), got {tuple(out.shape)}")
        return None, out

    def _values(self, user, cand, ids, slates, req) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position values for the advantage and scores, one call when possible."""
        per_pos, scores = self._judge(user, cand, ids, slates, req)
        if per_pos is None:
            items = cand[req.unsqueeze(1), slates]
            item_ids = None if ids is None else ids[req.unsqueeze(1), slates]
            per_pos = self.evaluator(user[req], items, item_ids)
        return per_pos, scores

    def _score_groups(self, user, cand, ids, slates, b: int, reps: int) -> torch.Tensor:
        """Scores (B, reps) of request-major candidate slates (B * reps, K)."""
        if reps == 0:
            return torch.empty(b, 0)
        if self.batched:
            req = torch.arange(b).repeat_interleave(reps)
            return self._judge(user, cand, ids, slates, req)[1].view(b, reps)
        req = torch.arange(b)
        s = slates.view(b, reps, -1)
        cols = [self._judge(user, cand, ids, s[:, j], req)[1] for j in range(reps)]
        return torch.stack(cols, dim=1)

    def _advantage(self, v_base: torch.Tensor, v_res: torch.Tensor | None) -> torch.Tensor:
        f = _reward_to_go if self.advantage == "reward_to_go" else (lambda r: r)
        v = f(v_base)
        if self.baseline == "resample" and v_res is not None and v_res.shape[1] > 0:
            return v - f(v_res).mean(dim=1)
        return v - v.mean(dim=1, keepdim=True)

    def _offset(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Unit-step offset 0.01 * ||x|| * g / ||g|| (or 0.01 * |x| * g / ||g||), per request."""
        unit = grad / (_per_request(grad) + _EPS)
        if self.scale == "norm":
            mag = _per_request(x)
        else:
            mag = x.abs()
        return 0.01 * mag * unit

    def _sample(self, enc, h0, b: int, n: int, batch_index: int, row_offset: int):
        """Resampled slates (B * R, K), request major."""
        r = self.resamples
        gumbel = self._gumbel(b, n, batch_index, row_offset)
        if self.batched:
            return _decode_with_noise(
                self.generator, enc.repeat_interleave(r, 0), h0.repeat_interleave(r, 0), gumbel
            )
        g = gumbel.view(b, r, *gumbel.shape[1:])
        cols = [_decode_with_noise(self.generator, enc, h0, g[:, j]) for j in range(r)]
        return torch.stack(cols, dim=1).view(b * r, -1)

    @staticmethod
    def _grad(adv: torch.Tensor, logp: torch.Tensor, leaves) -> tuple[torch.Tensor, ...]:
        """Gradient of sum(adv * logp) w.r.t. ``leaves`` (activations or deltas) only."""
        with torch.enable_grad():
            objective = (adv.detach() * logp).sum()
        return torch.autograd.grad(objective, leaves)

    def _greedy_with_grad(self, enc, h0, param_delta=None):
        with torch.enable_grad():
            return self.generator.decode(enc, h0, greedy=True, param_delta=param_delta)

    def _search(self, user, cand, ids, batch_index: int, row_offset: int) -> LastResult:
        gen, b, n = self.generator, user.shape[0], cand.shape[1]
        s_n, r_n = self.n_offsets, self.resamples
        timing: dict[str, float] = {}
        if b == 0:
            k, p = self.slate_size, self.n_candidates
            empty = np.zeros((0, k), dtype=np.int64)
            return LastResult(
                empty,
                np.zeros(0, np.float32),
                empty.copy(),
                np.zeros(0, np.float32),
                np.zeros(0, np.int64),
                np.zeros((0, p + 1), np.float32),
                self.labels,
                timing,
            )
        t = time.perf_counter()
        arange_b = torch.arange(b)
        with torch.no_grad():
            enc, h0 = gen.encode(user, cand, ids)
            # -- base slate (with the autograd record of its log-probs when a direction is needed)
            leaves: list[torch.Tensor] = []
            delta: dict[str, torch.Tensor] | None = None
            logp = None
            if s_n == 0:
                base, _ = gen.decode(enc, h0, greedy=True)
            elif self.mode == "parameter":
                params = dict(gen.named_parameters())
                delta = {
                    name: torch.zeros((b, *params[name].shape), requires_grad=True)
                    for name in gen.perturbable_parameters()
                }
                leaves = list(delta.values())
                base, logp = self._greedy_with_grad(enc, h0, delta)
            else:
                leaves = [enc.detach().requires_grad_(True), h0.detach().requires_grad_(True)]
                base, logp = self._greedy_with_grad(*leaves)
            timing["base"] = time.perf_counter() - t

            # -- unperturbed resamples (controls, and the advantage's baseline)
            t = time.perf_counter()
            res = self._sample(enc, h0, b, n, batch_index, row_offset) if r_n else None
            timing["resample"] = time.perf_counter() - t

            # -- judge the base slate (and the resamples): values for the advantage, scores
            t = time.perf_counter()
            first = base if res is None else torch.cat([base, res])
            req = (
                arange_b if res is None else torch.cat([arange_b, arange_b.repeat_interleave(r_n)])
            )
            if s_n and self.batched:
                v_all, sc_all = self._values(user, cand, ids, first, req)
                v_base, base_scores = v_all[:b], sc_all[:b]
                v_res = None if res is None else v_all[b:].view(b, r_n, -1)
                res_scores = None if res is None else sc_all[b:].view(b, r_n)
            else:
                if s_n:
                    v_base, base_scores = self._values(user, cand, ids, base, arange_b)
                else:
                    v_base, base_scores = None, self._judge(user, cand, ids, base, arange_b)[1]
                v_res, res_scores = None, None
                if res is not None:
                    if s_n and self.baseline == "resample":
                        cols = [
                            self._values(user, cand, ids, res.view(b, r_n, -1)[:, j], arange_b)
                            for j in range(r_n)
                        ]
                        v_res = torch.stack([c[0] for c in cols], dim=1)
                        res_scores = torch.stack([c[1] for c in cols], dim=1)
                    else:
                        res_scores = self._score_groups(user, cand, ids, res, b, r_n)
            timing["judge_base"] = time.perf_counter() - t

            # -- perturbed candidates
            t = time.perf_counter()
            if s_n == 0:
                off_slates = base.new_empty(0, self.slate_size)
                off_scores = torch.empty(b, 0)
            elif self.mode == "serial":
                off_slates, off_scores = self._serial(
                    user, cand, ids, enc, h0, base, logp, leaves, v_base, v_res
                )
            else:
                adv = self._advantage(v_base, v_res)
                grads = self._grad(adv, logp, leaves)
                off_slates = self._offset_decode(enc, h0, grads, leaves, delta, b)
                off_scores = self._score_groups(user, cand, ids, off_slates, b, s_n)
            timing["candidates"] = time.perf_counter() - t

        # -- selection
        t = time.perf_counter()
        k = self.slate_size
        slate_parts = [base.unsqueeze(1), off_slates.view(b, s_n, k)]
        score_parts = [base_scores.unsqueeze(1), off_scores]
        if res is not None:
            slate_parts.append(res.view(b, r_n, k))
            score_parts.append(res_scores)
        all_slates = torch.cat(slate_parts, dim=1)  # (B, 1 + P, K)
        all_scores = torch.cat(score_parts, dim=1).float()  # (B, 1 + P)
        same = (all_slates == base.unsqueeze(1)).all(dim=-1)
        all_scores = torch.where(same, base_scores.unsqueeze(1).float(), all_scores)
        winner = torch.zeros(b, dtype=torch.int64)
        if all_scores.shape[1] > 1:
            best_score, best = all_scores[:, 1:].max(dim=1)
            better = best_score > all_scores[:, 0] + self.min_gain
            winner = torch.where(better, best + 1, winner)
        served = all_slates[arange_b, winner]
        timing["select"] = time.perf_counter() - t
        return LastResult(
            slates=served.numpy().astype(np.int64, copy=True),
            scores=all_scores[arange_b, winner].numpy().copy(),
            base_slates=base.numpy().astype(np.int64, copy=True),
            base_scores=all_scores[:, 0].numpy().copy(),
            winner=winner.numpy().copy(),
            candidate_scores=all_scores.numpy().copy(),
            labels=self.labels,
            timing=timing,
        )

    def _offset_decode(self, enc, h0, grads, leaves, delta, b: int) -> torch.Tensor:
        """Greedy slates (B * S, K) under every step offset, request major."""
        gen, s_n = self.generator, len(self.steps)
        steps = torch.tensor(self.steps, dtype=torch.float32)
        if self.mode == "parameter":
            params = dict(gen.named_parameters())
            units = {
                name: self._offset(g, params[name].detach().expand_as(g))
                for name, g in zip(delta, grads, strict=True)
            }
            if self.batched:
                col = steps.repeat(b)
                pd = {
                    name: u.repeat_interleave(s_n, 0) * col.view(-1, *([1] * (u.ndim - 1)))
                    for name, u in units.items()
                }
                return gen.decode(
                    enc.repeat_interleave(s_n, 0), h0.repeat_interleave(s_n, 0), param_delta=pd
                )[0]
            cols = [
                gen.decode(enc, h0, param_delta={nm: s * u for nm, u in units.items()})[0]
                for s in self.steps
            ]
            return torch.stack(cols, dim=1).view(b * s_n, -1)
        d_enc = self._offset(grads[0], leaves[0].detach())
        d_h0 = self._offset(grads[1], leaves[1].detach())
        if self.batched:
            col = steps.repeat(b)
            e = enc.repeat_interleave(s_n, 0) + col.view(-1, 1, 1) * d_enc.repeat_interleave(s_n, 0)
            h = h0.repeat_interleave(s_n, 0) + col.view(-1, 1) * d_h0.repeat_interleave(s_n, 0)
            return gen.decode(e, h)[0]
        cols = [gen.decode(enc + s * d_enc, h0 + s * d_h0)[0] for s in self.steps]
        return torch.stack(cols, dim=1).view(b * s_n, -1)

    def _serial(self, user, cand, ids, enc, h0, base, logp, leaves, v_base, v_res):
        """Serial ascent on one activation offset: slates (B * T, K) and scores (B, T)."""
        gen, b = self.generator, user.shape[0]
        arange_b = torch.arange(b)
        norm_enc, norm_h0 = _per_request(enc), _per_request(h0)
        e, h = enc, h0
        values, cur_logp, cur_leaves = v_base, logp, leaves
        slates, scores = [], []
        for t in range(self.serial_steps):
            adv = self._advantage(values, v_res)
            g_enc, g_h0 = self._grad(adv, cur_logp, cur_leaves)
            unit_e = g_enc / (_per_request(g_enc) + _EPS)
            unit_h = g_h0 / (_per_request(g_h0) + _EPS)
            if self.scale == "norm":
                mag_e, mag_h = norm_enc, norm_h0
            else:
                mag_e, mag_h = enc.abs(), h0.abs()
            e = e + self.serial_step * 0.01 * mag_e * unit_e
            h = h + self.serial_step * 0.01 * mag_h * unit_h
            if t + 1 < self.serial_steps:
                cur_leaves = [e.detach().requires_grad_(True), h.detach().requires_grad_(True)]
                slate, cur_logp = self._greedy_with_grad(*cur_leaves)
                values, score = self._values(user, cand, ids, slate, arange_b)
            else:
                slate = gen.decode(e, h)[0]
                score = self._judge(user, cand, ids, slate, arange_b)[1]
            slates.append(slate)
            scores.append(score)
        return torch.stack(slates, dim=1).view(b * self.serial_steps, -1), torch.stack(
            scores, dim=1
        )
