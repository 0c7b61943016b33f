"""The list-wise click model, as pure batch functions of arrays.

P(click at position k) = examination(k) x attraction(user, item) x context(k, slate)

- **examination** falls with position: (k + 1) ** -(position_bias * s_i), where s_i is the user's
  position-bias sensitivity. This is what makes *where* an item is shown matter.
- **attraction** is a logistic function of the true affinity, the item's quality, the topic's
  popularity / trend and the user's boredom with the topic (computed by the world).
- **context** makes the model list-wise: each earlier slot showing the same topic multiplies the
  click probability by ``repeat_penalty``, and a share ``contrast`` of the probability is only
  earned when the neighbours (above and below) show other topics.

With ``cascade_stop > 0`` the user stops examining after a click with that probability; the
*marginal* click probability of slot k is then p_k * prod_{l<k} (1 - stop * p_l), which is what
the truth reported to the runner contains (so expected rewards stay exact).

Empty slots carry topic -1 and probability 0. Nothing here draws random numbers: the uniforms
come from the world's click stream, so two agents on the same seed face the same dice.
"""

from __future__ import annotations

import numpy as np

from . import kernels

EMPTY = -1
_TRI: dict[int, np.ndarray] = {}
_ALL = np.zeros((0, 0), np.int64)  # greedy_shortlist: no shortlist, every candidate


def earlier_mask(k: int) -> np.ndarray:
    """(K, K) boolean, True where j < k (cached: it is needed on every step)."""
    mask = _TRI.get(k)
    if mask is None:
        mask = _TRI[k] = np.tri(k, k, -1, dtype=bool)
    return mask


def gather_rows(matrix: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``matrix[b, index[b, j]]`` for every row b: ``take_along_axis`` without its overhead."""
    b, width = matrix.shape[0], matrix.shape[1]
    flat = index + (np.arange(b) * width)[:, None]
    return matrix.reshape(b * width, *matrix.shape[2:])[flat] if matrix.ndim > 2 else \
        matrix.reshape(-1).take(flat)


def examination(sensitivity: np.ndarray, slate_size: int, position_bias: float) -> np.ndarray:
    """(B, K) probability that position k is looked at, for users with given sensitivity."""
    log_rank = np.log1p(np.arange(slate_size, dtype=np.float32))
    return np.exp(-position_bias * sensitivity[:, None].astype(np.float32) * log_rank)


def context_factor(topics: np.ndarray, repeat_penalty: float, contrast: float) -> np.ndarray:
    """(B, K) slate-context multiplier in [0, 1] from the topics shown (-1 = empty slot)."""
    _, k = topics.shape
    shown = topics != EMPTY
    same = topics[:, :, None] == topics[:, None, :]  # same[b, k, j]
    earlier = earlier_mask(k)  # j < k
    repeats = (same & earlier & shown[:, None, :]).sum(axis=2)
    factor = np.power(np.float32(repeat_penalty), repeats, dtype=np.float32)
    if contrast > 0 and k > 1:
        differs = np.zeros(topics.shape, np.float32)
        neighbours = np.zeros(topics.shape, np.float32)
        left_shown = shown[:, :-1]
        left_diff = (topics[:, 1:] != topics[:, :-1]) & left_shown
        differs[:, 1:] += left_diff
        neighbours[:, 1:] += left_shown
        right_shown = shown[:, 1:]
        right_diff = (topics[:, :-1] != topics[:, 1:]) & right_shown
        differs[:, :-1] += right_diff
        neighbours[:, :-1] += right_shown
        share = np.divide(differs, neighbours, out=np.ones_like(differs), where=neighbours > 0)
        factor = factor * (np.float32(1.0 - contrast) + np.float32(contrast) * share)
    return factor


def marginal_click_probs(p_conditional: np.ndarray, cascade_stop: float) -> np.ndarray:
    """Marginal click probability per slot when a click ends browsing w.p. ``cascade_stop``."""
    if cascade_stop <= 0:
        return p_conditional
    keep = 1.0 - cascade_stop * p_conditional
    reach = np.ones_like(p_conditional)
    reach[:, 1:] = np.cumprod(keep[:, :-1], axis=1)
    return p_conditional * reach


def sample_clicks(
    p_conditional: np.ndarray, cascade_stop: float, u_click: np.ndarray, u_stop: np.ndarray
) -> np.ndarray:
    """0/1 clicks (B, K) from the given uniforms, honouring the cascade."""
    clicks = u_click < p_conditional
    if cascade_stop > 0:
        stops = clicks & (u_stop < cascade_stop)
        # examination continues through the first stopping click, then ends
        stopped_before = np.zeros_like(stops)
        stopped_before[:, 1:] = np.cumsum(stops, axis=1)[:, :-1] > 0
        clicks &= ~stopped_before
    return clicks


def slate_click_probs(
    exam: np.ndarray,
    attraction: np.ndarray,
    topics: np.ndarray,
    repeat_penalty: float,
    contrast: float,
) -> np.ndarray:
    """Conditional (given examination of earlier clicks) click probability per slot."""
    p = exam * attraction * context_factor(topics, repeat_penalty, contrast)
    p[topics == EMPTY] = 0.0
    return p


def greedy_reference(
    value: np.ndarray,
    topics: np.ndarray,
    slate_size: int,
    repeat_penalty: float,
    contrast: float,
    shortlist: int | None = None,
) -> np.ndarray:
    """A strong reference slate (B, K): greedy, slot by slot, on the *true* expected value.

    ``value`` (B, N) is each candidate's attraction times its reward per click. Slot k takes
    the unused candidate maximising value x repeat_penalty^(same topics above) x contrast term
    with the slot above (the slot below is not known yet, so it counts as different).
    Examination is the same for every candidate of a slot, so it drops out of the choice.

    The search runs over the ``shortlist`` (default 3K) most valuable candidates: an item
    outside them would need every one of the 3K to be penalised below it, which the default
    click model (20 topics, penalty 0.5) essentially never does, and it keeps the truth cheap
    enough to compute on every step. Not guaranteed optimal, but close, and the regret
    baseline of every run.
    """
    b, n = value.shape
    k = slate_size
    short = min(n, shortlist or 3 * k)
    # the shortlist: the first ``short`` columns of the partition (the kernel gathers them)
    keep = np.argpartition(-value, short - 1, axis=1) if short < n else _ALL
    slate = np.empty((b, k), np.int64)
    penalty = max(float(repeat_penalty), 1e-12)  # 0 would turn -inf into NaN below
    lo, hi = 1.0 - 0.5 * contrast, 1.0  # contrast term for same / different topic above
    kernels.greedy_shortlist(value, topics, keep, short, k, penalty, float(contrast), lo, hi,
                             slate)
    return slate
