"""The click model behaves as specified: position bias, topic context, cascade, truth."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.envs import click_model as cm
from driftrank.envs import make_config
from driftrank.envs.world import World


def test_examination_falls_with_position():
    exam = cm.examination(np.array([0.5, 1.0, 1.5]), 10, 0.8)
    assert np.all(np.diff(exam, axis=1) < 0)
    assert np.allclose(exam[:, 0], 1.0)
    assert np.all(exam[2, 1:] < exam[0, 1:])  # more sensitive users look less far down


def test_expected_clicks_fall_with_position_in_the_world():
    world = World(make_config("stationary", n_users=2000, n_items=1000), 4000, seed=1)
    rng = np.random.default_rng(0)
    slates = np.argsort(rng.random((4000, 50)), axis=1)[:, :10]  # random slates
    _, p_marg, _ = world._slate_truth(slates, np.ones_like(slates, bool))
    per_position = p_marg.mean(axis=0)
    assert np.all(np.diff(per_position) < 0)


def test_repeating_one_topic_earns_fewer_clicks_than_a_diverse_slate():
    k = 10
    exam = cm.examination(np.ones(1), k, 0.8)
    attraction = np.full((1, k), 0.4, np.float32)  # equally attractive items
    same_topic = np.zeros((1, k), np.int64)
    diverse = np.arange(k)[None, :]
    p_same = cm.slate_click_probs(exam, attraction, same_topic, 0.5, 0.2)
    p_diverse = cm.slate_click_probs(exam, attraction, diverse, 0.5, 0.2)
    assert p_same.sum() < 0.5 * p_diverse.sum()
    # the first slot only loses the contrast share; later slots lose repeat_penalty^j too
    assert p_same[0, 0] == pytest.approx(exam[0, 0] * 0.4 * 0.8)
    assert p_same[0, 3] == pytest.approx(exam[0, 3] * 0.4 * 0.5**3 * 0.8)


def test_context_factor_by_hand():
    topics = np.array([[1, 2, 1, -1, 3]])
    f = cm.context_factor(topics, repeat_penalty=0.5, contrast=0.2)
    # slot 0: one neighbour, differs -> 1; slot 2: one repeat above, both neighbours shown
    # (topic 2 differs, slot 3 empty so only one neighbour) -> 0.5 * 1
    assert f[0, 0] == pytest.approx(1.0)
    assert f[0, 2] == pytest.approx(0.5)
    assert f[0, 4] == pytest.approx(1.0)  # only neighbour is empty -> counts as contrast
    # an empty slot (topic -1) gets no click, however attractive, and repeats no topic
    p = cm.slate_click_probs(np.ones((1, 5)), np.ones((1, 5)), np.array([[-1, -1, 4, 4, 5]]),
                             0.5, 0.0)
    assert p[0].tolist() == [0.0, 0.0, 1.0, 0.5, 1.0]


def test_greedy_on_truth_beats_random_by_a_wide_margin():
    world = World(make_config("stationary"), 2000, seed=2)
    rng = np.random.default_rng(1)
    random_slates = np.argsort(rng.random((2000, 50)), axis=1)[:, :10]
    greedy = world.reference_slates()
    ratio = world.expected_reward(greedy).mean() / world.expected_reward(random_slates).mean()
    assert ratio > 1.8
    assert len({tuple(s) for s in greedy.tolist()}) > 1000
    assert all(len(set(s)) == 10 for s in greedy.tolist())


def test_sampled_click_rates_match_the_reported_truth_with_cascade():
    b, k = 200_000, 5
    rng = np.random.default_rng(0)
    p = np.tile(np.array([[0.6, 0.5, 0.4, 0.3, 0.2]], np.float32), (b, 1))
    stop = 0.5
    clicks = cm.sample_clicks(p, stop, rng.random((b, k), np.float32),
                              rng.random((b, k), np.float32))
    marginal = cm.marginal_click_probs(p[:1], stop)[0]
    np.testing.assert_allclose(clicks.mean(axis=0), marginal, atol=0.006)
    assert marginal[1] == pytest.approx(0.5 * (1 - 0.5 * 0.6))


def test_world_click_frequencies_match_truth():
    world = World(make_config("stationary", n_users=500, n_items=400, cascade_stop=0.3),
                  2000, seed=4)
    slates = np.tile(np.arange(10), (2000, 1))
    clicks, probs = [], []
    for _ in range(20):
        out = world.serve(slates)
        clicks.append(out["clicks"])
        probs.append(out["truth"]["click_probs"])
    clicks, probs = np.concatenate(clicks), np.concatenate(probs)
    np.testing.assert_allclose(clicks.mean(axis=0), probs.mean(axis=0), atol=0.01)


def _few_topic_world(batch: int, n: int, k: int, seed: int = 7) -> World:
    """A world where the slate context matters: 5 topics, so candidates share topics often."""
    config = make_config("stationary", n_users=300, n_items=300, n_topics=5, n_candidates=n,
                         slate_size=k)
    return World(config, batch, seed=seed)


def test_greedy_reference_is_near_the_brute_force_optimum():
    """At N=7, K=3 every ordered slate (210 of them) is scored on truth. The greedy reference
    never beats the optimum, stays within a few percent of it on average (it is myopic: it
    never places a weak item as a topic separator), and clearly beats ranking by value alone,
    which ignores the repeat penalty and contrast."""
    import itertools

    world = _few_topic_world(batch=300, n=7, k=3)
    c = world.config
    slates = np.array(list(itertools.permutations(range(7), 3)))
    every = np.stack([world.expected_reward(np.tile(s, (300, 1))) for s in slates], axis=1)
    best = every.max(axis=1)
    greedy = world.expected_reward(world.reference_slates())
    assert np.all(greedy <= best + 1e-5)
    assert greedy.mean() > 0.96 * best.mean()
    value = world._req_attraction * (1.0 + c.conversion_weight * world._req_pconv)
    blind = np.argsort(-value, axis=1, kind="stable")[:, :3]
    assert world.expected_reward(blind).mean() < greedy.mean() - 0.04 * best.mean()


def test_greedy_reference_beats_a_context_blind_top_k():
    world = _few_topic_world(batch=2000, n=50, k=10)
    c = world.config
    value = world._req_attraction * (1.0 + c.conversion_weight * world._req_pconv)
    blind = np.argsort(-value, axis=1, kind="stable")[:, :c.slate_size]
    greedy = world.reference_slates()
    assert world.expected_reward(greedy).mean() > 1.05 * world.expected_reward(blind).mean()
    # and in the default world it still wins (fewer collisions, smaller margin)
    default = World(make_config("stationary", n_users=500, n_items=400), 2000, seed=2)
    value = default._req_attraction * (1.0 + default.config.conversion_weight
                                       * default._req_pconv)
    blind = np.argsort(-value, axis=1, kind="stable")[:, :10]
    assert default.expected_reward(default.reference_slates()).mean() > \
        default.expected_reward(blind).mean() + 0.02


def test_greedy_shortlist_loses_almost_nothing_against_the_full_search():
    world = World(make_config("mixed"), 3000, seed=7)
    c = world.config
    value = world._req_attraction * (1.0 + c.conversion_weight * world._req_pconv)
    full = cm.greedy_reference(value, world._req_topics, 10, c.repeat_penalty, c.contrast,
                               shortlist=50)
    short = world.reference_slates()
    assert world.expected_reward(short).mean() > 0.999 * world.expected_reward(full).mean()


def test_greedy_reference_slots_by_hand():
    """Slot by slot: the repeat penalty multiplies the value of a topic already shown (once per
    earlier slot with it), and the contrast term (1 - contrast / 2) only hits a candidate of the
    same topic as the slot just above."""
    value = np.array([[1.0, 0.9, 0.4]])
    topics = np.array([[0, 0, 1]])
    # penalty 0.5: item 1 is worth 0.9 * 0.5 = 0.45 after item 0, still more than item 2 (0.4)
    assert cm.greedy_reference(value, topics, 2, 0.5, 0.0).tolist() == [[0, 1]]
    # penalty 0.4: 0.36 < 0.4, so the other topic comes second
    assert cm.greedy_reference(value, topics, 2, 0.4, 0.0).tolist() == [[0, 2]]
    # no repeat penalty, contrast 0.5: the same topic below scores 0.9 * 0.75 = 0.675 < 0.7
    value = np.array([[1.0, 0.9, 0.7]])
    assert cm.greedy_reference(value, topics, 2, 1.0, 0.5).tolist() == [[0, 2]]
    # contrast 0.4 (factor 0.8): 0.9 * 0.8 = 0.72 > 0.7, so value wins again
    assert cm.greedy_reference(value, topics, 2, 1.0, 0.4).tolist() == [[0, 1]]


def test_greedy_reference_with_a_full_repeat_penalty_never_repeats_an_item():
    """repeat_penalty=0 is a valid world (a repeated topic earns nothing): the chosen item's
    -inf must not become NaN and be chosen again."""
    value = np.array([[1.0, 0.9, 0.4]])
    topics = np.array([[0, 0, 1]])
    assert cm.greedy_reference(value, topics, 3, 0.0, 0.0).tolist() == [[0, 2, 1]]


# ------------------------------------------------------------------ against loops from the spec
def _context_by_loop(topics: np.ndarray, penalty: float, contrast: float) -> np.ndarray:
    """The module docstring, slot by slot: repeat_penalty per earlier shown slot of the same
    topic; a share ``contrast`` earned in proportion to the shown neighbours of another topic
    (all of it when no neighbour is shown)."""
    b, k = topics.shape
    out = np.ones((b, k))
    for r in range(b):
        row = topics[r].tolist()
        for j, t in enumerate(row):
            repeats = sum(1 for i in range(j) if row[i] == t and row[i] != cm.EMPTY)
            f = penalty ** repeats
            if contrast > 0:
                shown = [row[i] for i in (j - 1, j + 1) if 0 <= i < k and row[i] != cm.EMPTY]
                share = np.mean([x != t for x in shown]) if shown else 1.0
                f *= (1 - contrast) + contrast * share
            out[r, j] = f
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_context_factor_matches_a_loop_over_slots(k):
    """Random slates with few topics and empty slots (-1) anywhere, at several sizes: repeats,
    neighbours and empty slots are counted as specified (an empty neighbour is no neighbour)."""
    rng = np.random.default_rng(k)
    topics = rng.integers(-1, 3, size=(60, k))
    for penalty in (0.5, 0.8, 1.0):
        for contrast in (0.0, 0.2, 0.7):
            np.testing.assert_allclose(cm.context_factor(topics, penalty, contrast),
                                       _context_by_loop(topics, penalty, contrast), rtol=1e-6)
    # by hand: a slot between its own topic and an empty slot earns none of the contrast share
    assert cm.context_factor(np.array([[2, 2, -1]]), 0.5, 0.2)[0, 1] == pytest.approx(0.5 * 0.8)
    # two slots of one topic: both lose the contrast share (a 2-slot slate has neighbours too)
    np.testing.assert_allclose(cm.context_factor(np.array([[4, 4]]), 1.0, 0.2), [[0.8, 0.8]])


def test_clicks_need_the_uniform_strictly_below_the_probability():
    """P(u < p) = p for u uniform on [0, 1): u == p is no click (and p = 0, an empty slot, is
    never clicked), u_stop == cascade_stop is no stop."""
    p = np.array([[0.0, 0.5, 0.5, 0.5]], np.float32)
    u_click = np.array([[0.0, 0.5, 0.25, 0.25]], np.float32)
    no_stop = cm.sample_clicks(p, 0.5, u_click, np.array([[0.0, 0.0, 0.5, 0.0]], np.float32))
    assert no_stop.tolist() == [[False, False, True, True]]
    stop = cm.sample_clicks(p, 0.5, u_click, np.array([[0.0, 0.0, 0.4, 0.0]], np.float32))
    assert stop.tolist() == [[False, False, True, False]]  # examination ends after slot 2


def test_gather_rows_is_take_along_axis_for_matrices_and_stacks():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 6, size=(9, 5))  # more rows (9) than columns (6)
    matrix = rng.random((9, 6))
    np.testing.assert_array_equal(cm.gather_rows(matrix, index),
                                  np.take_along_axis(matrix, index, axis=1))
    stack = rng.random((9, 6, 3))  # e.g. per-candidate feature vectors
    np.testing.assert_array_equal(cm.gather_rows(stack, index),
                                  np.take_along_axis(stack, index[:, :, None], axis=1))


def _greedy_by_loop(value, topics, k, penalty, contrast):
    """greedy_reference's docstring over all candidates: slot by slot, the unused candidate
    maximising value x penalty^(same topics above) x (1 - contrast/2 if the slot above has its
    topic); the first one wins a tie."""
    out = []
    for v, t in zip(value.tolist(), topics.tolist(), strict=True):
        chosen: list[int] = []
        for _ in range(k):
            best, best_gain = -1, -np.inf
            for i, vi in enumerate(v):
                if i in chosen:
                    continue
                gain = vi * penalty ** sum(t[c] == t[i] for c in chosen)
                if contrast > 0 and chosen and t[chosen[-1]] == t[i]:
                    gain *= 1 - contrast / 2
                if gain > best_gain:
                    best, best_gain = i, gain
            chosen.append(best)
        out.append(chosen)
    return np.array(out)


@pytest.mark.parametrize("penalty, contrast", [(0.5, 0.0), (0.5, 0.2), (1.0, 0.6), (0.3, 0.9)])
def test_greedy_reference_matches_a_loop_over_slots(penalty, contrast):
    rng = np.random.default_rng(int(penalty * 10 + contrast * 100))
    value = rng.random((80, 8))
    topics = rng.integers(0, 3, size=(80, 8))
    got = cm.greedy_reference(value, topics, 4, penalty, contrast, shortlist=8)
    np.testing.assert_array_equal(got, _greedy_by_loop(value, topics, 4, penalty, contrast))


def test_greedy_reference_never_reuses_a_candidate_even_of_value_zero():
    value = np.array([[1.0, 0.0, 0.0, 0.0]])
    slate = cm.greedy_reference(value, np.array([[0, 1, 2, 3]]), 4, 0.5, 0.2)
    assert sorted(slate[0].tolist()) == [0, 1, 2, 3]


def _one_other_topic(rank: int, rows: int = 30, n: int = 12):
    """Rows of shuffled candidates: values 1.0, 0.99, ... by rank; every candidate is topic 0
    except the one of the given rank (topic 1)."""
    rng = np.random.default_rng(rank)
    by_rank = 1.0 - 0.01 * np.arange(n)
    value, topics, other = np.empty((rows, n)), np.zeros((rows, n), np.int64), []
    for r in range(rows):
        order = rng.permutation(n)  # order[i]: the rank-(i+1) candidate's position
        value[r, order] = by_rank
        topics[r, order[rank - 1]] = 1
        other.append(order[rank - 1])
    return value, topics, np.array(other)


def test_greedy_reference_searches_exactly_the_3k_most_valuable_candidates():
    """K=2, repeat penalty 0.5, no contrast: the second slot wants the one candidate of another
    topic (0.95 or 0.94 > 0.99 x 0.5). Ranked 6th (= 3K) it is in the default shortlist and
    chosen; ranked 7th it is outside, and only a longer shortlist finds it."""
    value, topics, other = _one_other_topic(rank=6)
    slates = cm.greedy_reference(value, topics, 2, 0.5, 0.0)
    np.testing.assert_array_equal(slates[:, 1], other)
    value, topics, other = _one_other_topic(rank=7, n=7)  # one candidate beyond the 3K
    default = cm.greedy_reference(value, topics, 2, 0.5, 0.0)
    assert not np.any(default[:, 1] == other)
    np.testing.assert_array_equal(default, cm.greedy_reference(value, topics, 2, 0.5, 0.0,
                                                               shortlist=6))
    longer = cm.greedy_reference(value, topics, 2, 0.5, 0.0, shortlist=7)
    np.testing.assert_array_equal(longer[:, 1], other)
