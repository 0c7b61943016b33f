"""Compiled kernels of the world's per-request path (gathers, recall, click model, feedback).

Why compiled: a step is a few dozen small array operations; in numpy each costs a call of
several microseconds whatever its size, and the large ones (recall windows, candidate features)
read and write the same memory several times. These loops do each job in one pass.

What they must not change: the numbers. So the kernels hold only operations whose result is
exact and order-free in IEEE arithmetic on the same float32/float64 types numpy uses (copies,
integer arithmetic, comparisons, single additions and multiplications in numpy's order).
Everything whose rounding is implementation-defined stays in numpy and is called from the
world as before: transcendental functions (``exp``, ``exp2``, ``log1p``, ``sin``; numpy's SIMD
versions differ from libm in the last bit), BLAS products and reductions whose summation order
numpy chooses, ``argpartition`` (its order within the selected set is numpy's introselect)
and every random draw (the streams stay those of numpy's generators, drawn in the same order).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def recall_window(offsets, stride_picks, strides, length, order, vectors, window, out_vectors):
    """Request i reads ``order[(offsets[i] + strides[stride_picks[i]] * j) % M]`` for
    j < ``length`` into ``window[i, j]`` and that item's latent vector into
    ``out_vectors[i, j]``."""
    m = order.shape[0]
    d = vectors.shape[1]
    for i in range(offsets.shape[0]):
        pos = offsets[i]
        step = strides[stride_picks[i]]
        for j in range(length):
            item = order[pos]
            window[i, j] = item
            for f in range(d):
                out_vectors[i, j, f] = vectors[item, f]
            pos += step
            if pos >= m:
                pos -= m


@njit(cache=True, nogil=True)
def recall_scores(affinity, scale, window, item_topic, topic_term, topic_bias, noise_scale,
                  noise, out):
    """``out = -(scale x affinity + topic_term[t] + topic_bias[t] + noise_scale x noise)`` on
    the pool (t = the topic of each pooled item; the noise drawn in float64, used in float32),
    summed in numpy's order; negated for argpartition."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            t = item_topic[window[i, j]]
            s = affinity[i, j] * scale + topic_term[t]
            s += topic_bias[t]
            s += noise_scale * np.float32(noise[i, j])
            out[i, j] = -s


@njit(cache=True, nogil=True)
def recall_pick(window, affinity, scale, top, n_rel, n_pool, column_order, cands, core):
    """Candidates in shuffled column order: column c takes pick ``column_order[c]`` of
    [the ``n_rel`` relevance winners (the first ``n_rel`` columns of ``top``, or the pool in
    order when ``top`` is empty), then the random tail of the window after the pool], with
    its affinity x ``scale``."""
    select = top.shape[1] > 0
    for i in range(cands.shape[0]):
        for c in range(cands.shape[1]):
            src = column_order[c]
            if src < n_rel:
                p = top[i, src] if select else src
            else:
                p = n_pool + (src - n_rel)
            cands[i, c] = window[i, p]
            core[i, c] = affinity[i, p] * scale


@njit(cache=True, nogil=True)
def item_features(slots, static, log_imp, ctr, born, tick, freshness_scale, with_stats, out,
                  age):
    """Candidate features without their freshness: ``static`` rows, then (if ``with_stats``)
    the published statistics; ``age[b, n] = (born - tick) / freshness_scale`` in float64, the
    argument of the freshness exponential."""
    s = static.shape[1]
    for i in range(slots.shape[0]):
        for j in range(slots.shape[1]):
            item = slots[i, j]
            for f in range(s):
                out[i, j, f] = static[item, f]
            if with_stats:
                out[i, j, s] = log_imp[item]
                out[i, j, s + 1] = ctr[item]
            age[i, j] = np.float64(born[item] - tick) / freshness_scale


@njit(cache=True, nogil=True)
def _greedy_row(gain, topics, slate_size, penalty, contrast, lo, hi, slate):
    """The greedy reference loop of one request (see :func:`greedy_slates`); uses up
    ``gain``."""
    n = gain.shape[0]
    prev = 0
    for pos in range(slate_size):
        best = 0
        best_gain = 0.0
        for j in range(n):
            g = gain[j]
            if contrast > 0 and pos > 0:
                g = g * (lo if topics[j] == prev else hi)
            if j == 0 or g > best_gain:
                best, best_gain = j, g
        slate[pos] = best
        prev = topics[best]
        gain[best] = -np.inf
        for j in range(n):
            if topics[j] == prev:
                gain[j] *= penalty


@njit(cache=True, nogil=True)
def greedy_shortlist(value, topics, keep, n, slate_size, penalty, contrast, lo, hi, slate):
    """:func:`greedy_slates` over each request's shortlist ``keep[b, :n]`` (candidate
    indices; empty ``keep``: the first ``n`` candidates), the slate given as candidate
    indices: the gather before and after the loop of ``click_model.greedy_reference``."""
    gain = np.empty(n, np.float64)
    row_topics = np.empty(n, np.int64)
    pick = keep.shape[0] > 0
    for i in range(value.shape[0]):
        for j in range(n):
            c = keep[i, j] if pick else j
            gain[j] = value[i, c]
            row_topics[j] = topics[i, c]
        _greedy_row(gain, row_topics, slate_size, penalty, contrast, lo, hi, slate[i])
        if pick:
            for pos in range(slate_size):
                slate[i, pos] = keep[i, slate[i, pos]]


@njit(cache=True, nogil=True)
def greedy_slates(value, topics, slate_size, penalty, contrast, lo, hi, slate):
    """The greedy reference loop of ``click_model.greedy_reference`` on float64 gains: slot by
    slot the first maximum of gain (x ``lo`` / ``hi`` when the slot above shows the same /
    another topic), then the chosen candidate is used up and its topic's gains scaled by
    ``penalty``."""
    greedy_shortlist(value, topics, np.empty((0, 0), np.int64), value.shape[1], slate_size,
                     penalty, contrast, lo, hi, slate)


@njit(cache=True, nogil=True)
def value_per_click(p, pconv, weight, out):
    """``p * (1 + weight * pconv)`` in float32 as numpy computes it (``weight`` float32):
    a click's reward, conversions weighted, times its probability."""
    one = np.float32(1.0)
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            out[i, j] = p[i, j] * (one + weight * pconv[i, j])


@njit(cache=True, nogil=True)
def expected_rewards(p, pconv, weight, out):
    """``(p * (1 + weight * pconv)).sum(axis=1)`` as numpy computes it: float32 terms and
    numpy's pairwise row sum (rows of at most 128)."""
    one = np.float32(1.0)
    row = np.empty(p.shape[1], np.float32)
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            row[j] = p[i, j] * (one + weight * pconv[i, j])
        out[i] = _pairwise_sum(row)


@njit(cache=True, nogil=True)
def slate_probs(slates, shown, topics, attraction, pconv, exam, repeat_factor, keep_share,
                contrast, stop, slate_topics, p_cond, p_marg, slate_pconv):
    """The click model of served slates (see ``click_model``) in one pass per row.

    ``repeat_factor[r]`` = repeat_penalty ** r (from numpy); ``keep_share`` = 1 - contrast and
    ``contrast`` as float32 (contrast <= 0: no neighbour term); ``stop`` = cascade_stop as
    float32 (<= 0: marginal = conditional). Writes the shown topics (-1 = empty slot), the
    conditional and marginal click probabilities and the conversion probabilities."""
    b, k = slates.shape
    one = np.float32(1.0)
    for i in range(b):
        for s in range(k):
            c = slates[i, s]
            slate_topics[i, s] = topics[i, c] if shown[i, s] else -1
            slate_pconv[i, s] = pconv[i, c]
        for s in range(k):
            t = slate_topics[i, s]
            if t == -1:
                p_cond[i, s] = 0.0
                continue
            repeats = 0
            for j in range(s):
                if slate_topics[i, j] == t:
                    repeats += 1
            factor = repeat_factor[repeats]
            if contrast > 0 and k > 1:
                differs = np.float32(0.0)
                neighbours = np.float32(0.0)
                if s > 0 and slate_topics[i, s - 1] != -1:
                    neighbours += one
                    if slate_topics[i, s - 1] != t:
                        differs += one
                if s < k - 1 and slate_topics[i, s + 1] != -1:
                    neighbours += one
                    if slate_topics[i, s + 1] != t:
                        differs += one
                share = differs / neighbours if neighbours > 0 else one
                factor = factor * (keep_share + contrast * share)
            p_cond[i, s] = exam[i, s] * attraction[i, slates[i, s]] * factor
        if stop > 0:
            reach = one
            for s in range(k):
                p_marg[i, s] = p_cond[i, s] * reach
                reach = reach * (one - stop * p_cond[i, s])
        else:
            for s in range(k):
                p_marg[i, s] = p_cond[i, s]


@njit(cache=True, nogil=True)
def feedback(users, slots, shown, clicks, item_impressions, item_clicks, item_topic,
             item_static, n_topics, item_v, visits, user_clicks, satisfaction, bad_run,
             history, boredom, taste, memory, boredom_gain, consumption_rate, ticks,
             profile_tick, inv_half, n_clicks, has_rows, decay_arg, item_sum):
    """The behaviour the world records after a served batch (``World._apply_feedback``), with
    numpy's semantics: ``x[idx] = f(x[idx])`` reads every original before writing (the last
    duplicate wins), ``np.add.at`` adds duplicates one by one in row-major order.

    Writes ``n_clicks`` (B,), the rows with a click in ``has_rows`` (returns how many),
    their exponent ``-dt / half-life`` of the profile decay in ``decay_arg`` (numpy takes the
    ``exp2``) and each row's sum of the clicked items' observed vectors in ``item_sum``."""
    b, k = clicks.shape
    obs = item_sum.shape[1]
    one = np.float32(1.0)
    n_total = 0
    for i in range(b):
        count = 0
        for s in range(k):
            if shown[i, s]:
                item_impressions[slots[i, s]] += 1.0
            if clicks[i, s]:
                count += 1
        n_clicks[i] = count
        n_total += count
    for i in range(b):
        for s in range(k):
            if clicks[i, s]:
                item_clicks[slots[i, s]] += 1.0
    # visits, satisfaction, runs of bad visits: gather all, then scatter (last wins)
    new_sat = np.empty(b, np.float32)
    new_run = np.empty(b, np.int64)
    keep = one - memory
    for i in range(b):
        u = users[i]
        new_sat[i] = keep * satisfaction[u] + memory * np.float32(n_clicks[i])
        new_run[i] = 0 if n_clicks[i] > 0 else bad_run[u] + 1
    for i in range(b):
        u = users[i]
        visits[u] += 1
        user_clicks[u] += n_clicks[i]
    for i in range(b):
        satisfaction[users[i]] = new_sat[i]
        bad_run[users[i]] = new_run[i]
    if n_total == 0:
        return 0
    n_has = 0
    for i in range(b):
        for f in range(obs):
            acc = item_static[slots[i, 0], n_topics + f] * np.float32(clicks[i, 0])
            for s in range(1, k):
                acc += item_static[slots[i, s], n_topics + f] * np.float32(clicks[i, s])
            item_sum[i, f] = acc
        if n_clicks[i] > 0:
            has_rows[n_has] = i
            dt = np.float32(ticks[i] - profile_tick[users[i]])
            for h in range(inv_half.shape[0]):
                decay_arg[n_has, h] = -dt * inv_half[h]
            n_has += 1
    for i in range(b):
        for s in range(k):
            if clicks[i, s]:
                history[users[i], item_topic[slots[i, s]]] += one
    if boredom_gain > 0:
        for i in range(b):
            for s in range(k):
                if clicks[i, s]:
                    boredom[users[i], item_topic[slots[i, s]]] += boredom_gain
    if consumption_rate > 0:
        d = taste.shape[1]
        pull = np.empty((n_total, d), np.float32)
        n = 0
        for i in range(b):  # every pull from the tastes before any is applied
            for s in range(k):
                if clicks[i, s]:
                    for f in range(d):
                        pull[n, f] = consumption_rate * (item_v[slots[i, s], f]
                                                         - taste[users[i], f])
                    n += 1
        n = 0
        for i in range(b):
            for s in range(k):
                if clicks[i, s]:
                    for f in range(d):
                        taste[users[i], f] += pull[n, f]
                    n += 1
    return n_has


@njit(cache=True, nogil=True)
def profile_update(has_rows, users, ticks, decay, item_sum, n_clicks, profile, profile_weight,
                   profile_tick):
    """For the rows ``has_rows[:n]`` (n = ``len(decay)``, the rows with a click): decay their
    users' profiles by ``decay`` (gather all, scatter, last wins), stamp their tick, then add
    each row's clicked vectors and click count (one by one, in order)."""
    n, h = decay.shape
    o = profile.shape[2]
    old = np.empty((n, h, o), np.float32)
    old_w = np.empty((n, h), np.float32)
    for i in range(n):
        u = users[has_rows[i]]
        for j in range(h):
            old_w[i, j] = profile_weight[u, j] * decay[i, j]
            for f in range(o):
                old[i, j, f] = profile[u, j, f] * decay[i, j]
    for i in range(n):
        r = has_rows[i]
        u = users[r]
        profile[u] = old[i]
        profile_weight[u] = old_w[i]
        profile_tick[u] = ticks[r]
    for i in range(n):
        r = has_rows[i]
        u = users[r]
        nc = np.float32(n_clicks[r])
        for j in range(h):
            profile_weight[u, j] += nc
            for f in range(o):
                profile[u, j, f] += item_sum[r, f]


@njit(cache=True, nogil=True)
def _scale_rows(table, users, factor):
    """``table[users] = table[users] * factor[:, None]`` with numpy's gather-then-scatter
    semantics: every factor applies to the row as it was before, the last duplicate wins."""
    new = np.empty((users.shape[0], table.shape[1]), np.float32)
    for i in range(users.shape[0]):
        for f in range(table.shape[1]):
            new[i, f] = table[users[i], f] * factor[i]
    for i in range(users.shape[0]):
        table[users[i]] = new[i]


@njit(cache=True, nogil=True)
def visit_update(users, ticks, last_seen, taste_keep, z, z_scale, boredom_decay, history_decay,
                 taste, boredom, history, offset, u_eff):
    """Arriving users' lazy drift for the time since their last visit (``World._draw_requests``)
    with numpy's gather-then-scatter semantics (the last duplicate wins).

    ``taste_keep`` (B,) = exp(-gap / timescale) or empty for no taste drift; ``boredom_decay``
    and ``history_decay`` (B,) the exp2 factors (boredom: empty = none), which numpy took of
    the gaps from :func:`visit_gaps`. Writes the effective tastes ``u_eff`` (B, d)."""
    b = users.shape[0]
    d = taste.shape[1]
    one = np.float32(1.0)
    if taste_keep.shape[0]:
        new = np.empty((b, d), np.float32)
        for i in range(b):
            a = taste_keep[i]
            root = np.sqrt(one - a * a)
            for f in range(d):
                new[i, f] = a * taste[users[i], f] + root * (z[i, f] / z_scale)
        for i in range(b):
            taste[users[i]] = new[i]
    if boredom_decay.shape[0]:
        _scale_rows(boredom, users, boredom_decay)
    _scale_rows(history, users, history_decay)
    for i in range(b):
        last_seen[users[i]] = ticks[i]
    for i in range(b):
        for f in range(d):
            u_eff[i, f] = taste[users[i], f] + offset[f]


@njit(cache=True, nogil=True)
def visit_gaps(users, tick, last_seen, never, taste_timescale, boredom_half_life,
               history_half_life, ticks, gap, first, taste_arg, boredom_arg, history_arg):
    """Ticks of the arriving users (``tick + i``), ticks since each one's last visit as
    float32 (tick + 1 on a first visit), and the arguments -gap / scale (float32) of the decay
    exponentials numpy then takes: taste drift, boredom and history (each skipped when its
    output is empty)."""
    for i in range(users.shape[0]):
        t = tick + i
        ticks[i] = t
        last = last_seen[users[i]]
        first[i] = last == never
        g = np.float32(t + 1) if first[i] else np.float32(t - last)
        gap[i] = g
        if taste_arg.shape[0]:
            taste_arg[i] = -g / taste_timescale
        if boredom_arg.shape[0]:
            boredom_arg[i] = -g / boredom_half_life
        history_arg[i] = -g / history_half_life


@njit(cache=True, nogil=True)
def shown_mask(slates, shown):
    """``shown[b, k]`` False where slot k repeats an index of an earlier slot of its slate."""
    for i in range(slates.shape[0]):
        for s in range(slates.shape[1]):
            shown[i, s] = True
            for j in range(s):
                if slates[i, j] == slates[i, s]:
                    shown[i, s] = False
                    break


@njit(cache=True, nogil=True)
def sample_clicks(p_cond, pconv, dice, stop, cands, slates, clicks, converted, slots):
    """Clicks from the click stream's uniforms (``dice[0]`` click, ``dice[1]`` stop after a
    click when ``stop`` > 0, ``dice[2]`` conversion), as ``click_model.sample_clicks``; the
    conversions among them and the catalog slots of the served candidates. Returns (clicks,
    conversions) counted, so the world skips the label work of a batch without any."""
    b, k = p_cond.shape
    n_clicks = 0
    n_converted = 0
    for i in range(b):
        stopped = False
        for s in range(k):
            slots[i, s] = cands[i, slates[i, s]]
            c = dice[0, i, s] < p_cond[i, s]
            if stop > 0:
                c = c and not stopped
                if c and dice[1, i, s] < stop:
                    stopped = True
            clicks[i, s] = c
            converted[i, s] = c and dice[2, i, s] < pconv[i, s]
            n_clicks += c
            n_converted += converted[i, s]
    return n_clicks, n_converted


@njit(cache=True, nogil=True)
def serve_clicks(slates, cands, topics, attraction, pconv, exam, repeat_factor, keep_share,
                 contrast, stop, dice, shown, slate_topics, p_cond, p_marg, slate_pconv, clicks,
                 converted, slots):
    """:func:`shown_mask`, :func:`slate_probs` and :func:`sample_clicks` of the served
    slates in one call (``World.serve``); returns (clicks, conversions) counted."""
    shown_mask(slates, shown)
    slate_probs(slates, shown, topics, attraction, pconv, exam, repeat_factor, keep_share,
                contrast, stop, slate_topics, p_cond, p_marg, slate_pconv)
    return sample_clicks(p_cond, slate_pconv, dice, stop, cands, slates, clicks, converted,
                         slots)


@njit(cache=True, nogil=True)
def conversion_delays(converted, u_mix, expo, realistic, fast_share, fast_mean, slow_mean,
                      ticks_per_hour, window_hours, mean, delays):
    """``conversions.conversion_delays`` of the float32 dice at the ``converted`` slots, in
    the types numpy computes them in: realistic (``realistic``), ``u_mix < fast_share`` in
    float32, hours = float64(expo) x the component's mean, ticks = max(ceil(hours x
    ticks_per_hour), 1) in float64; exponential: max(ceil(expo x ``mean``), 1) in float32
    (``fast_share`` and ``mean`` come as float32, as numpy casts a Python float next to a
    float32 array). A delay past the attribution window clears its ``converted`` flag
    (never reported); returns how many conversions remain."""
    b, k = converted.shape
    n = 0
    for i in range(b):
        for s in range(k):
            if not converted[i, s]:
                continue
            if realistic:
                hours = np.float64(expo[i, s]) * (fast_mean if u_mix[i, s] < fast_share
                                                  else slow_mean)
                delays[i, s] = np.int64(max(np.ceil(hours * ticks_per_hour), 1.0))
                if not hours <= window_hours:
                    converted[i, s] = False
                    continue
            else:
                delays[i, s] = np.int64(max(np.ceil(expo[i, s] * mean), np.float32(1.0)))
            n += 1
    return n


@njit(cache=True, nogil=True)
def label_table(mask, delays, request_ids, users, user_ids, item_ids, step_index):
    """The labels (clicks or conversions) where ``mask`` is set, in row-major order
    (``np.nonzero``'s), as one int64 table (7, n) whose rows are the fields of
    ``types.FIELDS``: request id, batch row, user id, item id, position, served step and
    delay (``delays[b, k]``, or 0 for every label when ``delays`` is empty)."""
    b, k = mask.shape
    n = 0
    for i in range(b):
        for s in range(k):
            if mask[i, s]:
                n += 1
    table = np.empty((7, n), np.int64)
    n = 0
    for i in range(b):
        for s in range(k):
            if mask[i, s]:
                table[0, n] = request_ids[i]
                table[1, n] = i
                table[2, n] = user_ids[users[i]]
                table[3, n] = item_ids[i, s]
                table[4, n] = s
                table[5, n] = step_index
                table[6, n] = delays[i, s] if delays.shape[0] else 0
                n += 1
    return table


@njit(cache=True, nogil=True)
def queued_labels(mask, delays, request_ids, users, user_ids, item_ids, step_index, b):
    """:func:`label_table` of labels due ``delay`` ticks after their request, and the step
    each lands in: the first whose window [s*B, (s+1)*B) reaches the due tick, never the
    serving step. Both sorted by landing step, stably (row-major within a step), which is
    how ``ConversionQueue`` keeps them."""
    table = label_table(mask, delays, request_ids, users, user_ids, item_ids, step_index)
    n = table.shape[1]
    land = np.empty(n, np.int64)
    for j in range(n):
        land[j] = max(step_index + 1, (table[0, j] + table[6, j]) // b)
    order = np.argsort(land, kind="mergesort")
    sorted_land = np.empty(n, np.int64)
    sorted_table = np.empty((7, n), np.int64)
    for j in range(n):
        sorted_land[j] = land[order[j]]
        for f in range(7):
            sorted_table[f, j] = table[f, order[j]]
    return sorted_land, sorted_table


@njit(cache=True, nogil=True)
def step_outputs(shown, item_ids, first, gap, report_rows, landed_rows, conversion_weight,
                 empty_slots, served, return_gap, reward):
    """Per-row outputs of a served batch: empty slots, served item ids (-1 = empty), return
    gap (-1 on a first visit) and reward = clicks reported + weight x conversions landed,
    computed as numpy does (float64 from the counts, then float32)."""
    b, k = shown.shape
    for i in range(b):
        empty = 0
        for s in range(k):
            if shown[i, s]:
                served[i, s] = item_ids[i, s]
            else:
                served[i, s] = -1
                empty += 1
        empty_slots[i] = empty
        return_gap[i] = -1 if first[i] else np.int64(gap[i])
    n_reports = np.zeros(b, np.int64)
    n_landed = np.zeros(b, np.int64)
    for r in report_rows:
        n_reports[r] += 1
    for r in landed_rows:
        n_landed[r] += 1
    weight = np.float64(conversion_weight)
    for i in range(b):
        reward[i] = np.float32(np.float64(n_reports[i]) + weight * np.float64(n_landed[i]))


@njit(cache=True, nogil=True)
def _pairwise_sum(row):
    """numpy's pairwise float32 sum of a short contiguous row (n <= 128): 8 partial sums."""
    n = row.shape[0]
    if n < 8:
        res = np.float32(0.0)
        for i in range(n):
            res += row[i]
        return res
    r = row[:8].copy()
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            r[j] += row[i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += row[i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def user_features(slots, profile, profile_weight, history, satisfaction, log_counts, bound,
                  out):
    """Observed user features (``Population.features``, history mode) clipped to
    [-bound, bound]: per half-life the profile over its weight, the topic histogram over its
    sum + 1, log visits / 5, log clicks / 5 (``log_counts`` (2, B): numpy's log1p of the
    counts) and satisfaction."""
    n, h, o = slots.shape[0], profile.shape[1], profile.shape[2]
    t = history.shape[1]
    tiny = np.float32(1e-12)
    one = np.float32(1.0)
    f = out.shape[1]
    for i in range(n):
        u = slots[i]
        for j in range(h):
            w = max(profile_weight[u, j], tiny)
            for k in range(o):
                out[i, j * o + k] = profile[u, j, k] / w
        total = _pairwise_sum(history[u]) + one
        for k in range(t):
            out[i, h * o + k] = history[u, k] / total
        out[i, f - 3] = np.float32(log_counts[0, i] / 5.0)
        out[i, f - 2] = np.float32(log_counts[1, i] / 5.0)
        out[i, f - 1] = satisfaction[u]
        for k in range(f):
            x = out[i, k]
            if x < -bound:
                out[i, k] = -bound
            elif x > bound:
                out[i, k] = bound


@njit(cache=True, nogil=True)
def context_features(sin, cos, activity, log_gap, bound, out):
    """The context rows (``World._build_observation``): sine and cosine of the time of day
    (numpy's, float64 stored as float32), the activity feature, and min(log1p(gap) / 10,
    ``bound``) in float32 as numpy computes it next to a float32 array (NaN stays NaN)."""
    ten = np.float32(10.0)
    for i in range(out.shape[0]):
        out[i, 0] = sin[i]
        out[i, 1] = cos[i]
        out[i, 2] = activity[i]
        x = log_gap[i] / ten
        out[i, 3] = bound if x > bound else x


@njit(cache=True, nogil=True)
def truth_logits(cands, core, users, item_quality, quality_shift, item_topic, topic_term,
                 attraction_bias, boredom, conversion_bias, conversion_gain, sensitivity,
                 neg_position_bias, log_rank, topics, logit, exp_args):
    """The attraction logits of the pending requests (``World._truth_for``) and the
    arguments of the exponentials numpy then takes in one call: ``exp_args[0]`` = -logit,
    ``exp_args[1]`` = -(conversion_bias + conversion_gain x core) (both (B, N), for the
    sigmoids), ``exp_args[2]`` (B, K, flattened into the (B, N) row) the examination
    exponent -position_bias x sensitivity x log(1 + k). ``quality_shift`` (B, N) is added to
    the item quality when it has rows; ``boredom`` is subtracted when it has rows."""
    b, n = cands.shape
    k = log_rank.shape[0]
    drift = quality_shift.shape[0] > 0
    bored = boredom.shape[0] > 0
    for i in range(b):
        u = users[i]
        for j in range(n):
            item = cands[i, j]
            t = item_topic[item]
            topics[i, j] = t
            q = item_quality[item]
            if drift:
                q = q + quality_shift[i, j]
            x = core[i, j] + q
            x = x + topic_term[t]
            x = x + attraction_bias
            if bored:
                x = x - boredom[u, t]
            logit[i, j] = x
            exp_args[0, i, j] = -x
            exp_args[1, i, j] = -(conversion_bias + conversion_gain * core[i, j])
        scale = neg_position_bias * sensitivity[u]
        for s in range(k):
            exp_args[2, i, s] = scale * log_rank[s]
        for s in range(k, n):
            exp_args[2, i, s] = 0.0


@njit(cache=True, nogil=True)
def sigmoids(exps, attraction, pconv, exam):
    """1 / (1 + e) of numpy's exponentials from :func:`truth_logits`; the examination is the
    exponential itself."""
    b, n = attraction.shape
    one = np.float32(1.0)
    for i in range(b):
        for j in range(n):
            attraction[i, j] = one / (one + exps[0, i, j])
            pconv[i, j] = one / (one + exps[1, i, j])
        for s in range(exam.shape[1]):
            exam[i, s] = exps[2, i, s]


@njit(cache=True, nogil=True)
def drift_step(trend, offset, factors, keeps, coefs, moving, z, topic_pop, periodic,
               topic_term):
    """One step of the shared drift (``GlobalDrift.advance``): exact OU updates
    ``x = x * keep + coef * z`` (float32, numpy's order) of the trend, the population offset
    and the quality factors flagged ``moving``, each reading the next slice of ``z``; then
    ``topic_term = (topic_pop + trend) + periodic``."""
    start = 0
    p = 0
    for x in (trend, offset, factors):
        if moving[p]:
            keep, coef = keeps[p], coefs[p]
            for i in range(x.shape[0]):
                x[i] = x[i] * keep
                x[i] = x[i] + coef * z[start + i]
        start += x.shape[0]
        p += 1
    for i in range(topic_term.shape[0]):
        topic_term[i] = (topic_pop[i] + trend[i]) + periodic[i]


@njit(cache=True, nogil=True)
def alias_draws(uniforms, n_users, prob, alias, out):
    """Walker's alias method on ``pick = uniforms x n_users`` (float64, in [0, n)): slot
    ``int(pick)``, kept when the fractional part is below its ``prob``, else its ``alias``."""
    n = prob.shape[0]
    for i in range(uniforms.shape[0]):
        pick = uniforms[i] * n_users
        slot = min(np.int64(pick), n - 1)
        out[i] = slot if (pick - slot) < prob[slot] else alias[slot]


@njit(cache=True, nogil=True)
def all_in_range(values, n):
    """True when every entry of the flat integer array lies in [0, n)."""
    for x in values:
        if x < 0 or x >= n:
            return False
    return True
