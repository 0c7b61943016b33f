"""Tests of the ReLoop2 error memory (driftrank.adapt.error_memory)."""

from __future__ import annotations

import numpy as np
import pytest

from driftrank.adapt.error_memory import ErrorMemory, MemoryReadout

# key_dim 2 with the identity as hyperplanes: with L=1, R=2 array 0 hashes on the sign of x and
# array 1 on the sign of y, so every bucket content below can be worked out by hand.
EYE = np.eye(2, dtype=np.float32)
A, B, C, D = (1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)


def hand_memory(**kw) -> ErrorMemory:
    """Stream: a (y=1, yb=.2), b (y=0, yb=.4), a (y=1, yb=.6). Log-count similarity unless
    ``similarity`` is given (its weights are easy to work out by hand)."""
    kw.setdefault("similarity", "log_count")
    mem = ErrorMemory(2, n_bits=1, n_arrays=2, projections=EYE, **kw)
    mem.write(np.array([A, B, A]), np.array([1.0, 0.0, 1.0]), np.array([0.2, 0.4, 0.6]))
    return mem


def clustered(rng, centre, n, spread=0.05):
    return centre + spread * rng.standard_normal((n, centre.size))


# ---------------------------------------------------------------- sketch math by hand
def test_bucket_index_bit_order():
    mem = ErrorMemory(2, n_bits=2, n_arrays=1, projections=EYE)
    # bit 0 = [x > 0] (weight 1), bit 1 = [y > 0] (weight 2); exactly 0 is not > 0
    got = mem.bucket_index(np.array([A, B, C, D, (0.0, 1.0)]))
    np.testing.assert_array_equal(got[:, 0], [3, 1, 2, 0, 2])


def test_bucket_sums_by_hand():
    table = hand_memory().state_dict()["table"]  # (3, R, 2**L): count, sum_y, sum_y_base
    # array 0 (x > 0): a, b, a in bucket 1, bucket 0 empty
    np.testing.assert_allclose(table[:, 0, 1], [3.0, 2.0, 1.2])
    np.testing.assert_allclose(table[:, 0, 0], [0.0, 0.0, 0.0])
    # array 1 (y > 0): a, a in bucket 1; b in bucket 0
    np.testing.assert_allclose(table[:, 1, 1], [2.0, 2.0, 0.8])
    np.testing.assert_allclose(table[:, 1, 0], [1.0, 0.0, 0.4])


def test_readout_by_hand_tau_one_is_pooled_mean():
    ro = hand_memory(tau=1.0).read(np.array([A]))
    assert isinstance(ro, MemoryReadout)
    np.testing.assert_allclose(ro.count, [[3.0, 2.0]])
    np.testing.assert_allclose(ro.y_bar, [[2 / 3, 1.0]])
    np.testing.assert_allclose(ro.y_bar_base, [[0.4, 0.4]])
    # tau = 1: w proportional to count, i.e. the pooled mean over everything the query hit
    np.testing.assert_allclose(ro.weights, [[0.6, 0.4]])
    y_bar, y_bar_base = ro.pooled()
    np.testing.assert_allclose(y_bar, [(2.0 + 2.0) / (3 + 2)])
    np.testing.assert_allclose(y_bar_base, [(1.2 + 0.8) / (3 + 2)])


def test_readout_by_hand_sharper_tau():
    ro = hand_memory(tau=0.5).read(np.array([A]))
    np.testing.assert_allclose(ro.weights, [[9 / 13, 4 / 13]])  # counts 3, 2 squared


def test_share_similarity_by_hand():
    # the paper's: s_r = c_r / (samples in the array) = 3/3 and 2/3; softmax over tau
    ro = hand_memory(tau=0.5, similarity="share").read(np.array([A]))
    e = np.exp(np.array([1.0, 2 / 3]) / 0.5)
    np.testing.assert_allclose(ro.weights, [e / e.sum()])


def test_share_is_the_default_and_log_count_is_an_option():
    assert ErrorMemory(4).similarity == "share"
    assert ErrorMemory(4, similarity="log_count").similarity == "log_count"
    with pytest.raises(ValueError, match="similarity"):
        ErrorMemory(4, similarity="cosine")


def test_two_separated_clusters_read_back_their_own_labels():
    # the reproduction: 4,096 keys around c1 labelled 1, 4,096 around c2 labelled 0,
    # base 0.2, d = 32, default settings. Log-count attention at tau = 0.1 follows the most
    # crowded bucket, where the two clusters collide; the paper's share similarity averages
    # the arrays and recovers each cluster's label.
    rng = np.random.default_rng(0)
    d, n = 32, 4096
    c1, c2 = rng.standard_normal(d), rng.standard_normal(d)
    k1, k2 = clustered(rng, c1, n, 0.3), clustered(rng, c2, n, 0.3)
    keys = np.concatenate([k1, k2])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    q1, q2 = clustered(rng, c1, 200, 0.3), clustered(rng, c2, 200, 0.3)
    mem = ErrorMemory(d, seed=0)
    mem.write(keys, y, np.full(2 * n, 0.2))
    assert abs(mem.read(q1).pooled()[0].mean() - 1.0) < 0.02
    assert abs(mem.read(q2).pooled()[0].mean() - 0.0) < 0.02


def test_share_similarity_keeps_a_small_cluster_apart_from_a_crowded_one():
    # 8,192 keys labelled 1 around c1, 256 labelled 0 around an orthogonal c2. In the arrays
    # where c2's keys fall into c1's bucket, that bucket is the most crowded: log-count
    # attention at tau = 0.1 follows it and answers c1's label for c2's queries; the share
    # similarity lets every array vote and stays near c2's label.
    rng = np.random.default_rng(0)
    d = 32
    c1 = rng.standard_normal(d)
    c2 = rng.standard_normal(d)
    c2 -= c2 @ c1 / (c1 @ c1) * c1
    c2 *= np.linalg.norm(c1) / np.linalg.norm(c2)
    keys = np.concatenate([clustered(rng, c1, 8192, 0.3), clustered(rng, c2, 256, 0.3)])
    y = np.concatenate([np.ones(8192), np.zeros(256)])
    q2 = clustered(rng, c2, 200, 0.3)
    read = {}
    for sim in ("share", "log_count"):
        mem = ErrorMemory(d, seed=0, similarity=sim)
        mem.write(keys, y, np.full(y.size, 0.2))
        read[sim] = mem.read(q2).pooled()[0].mean()
    assert read["share"] < 0.3 < 0.6 < read["log_count"]


def test_empty_bucket_gets_zero_weight_and_no_nan():
    ro = hand_memory(tau=0.1).read(np.array([C, D]))
    # c: array 0 bucket 0 is empty, array 1 bucket 1 holds a, a
    np.testing.assert_allclose(ro.weights[0], [0.0, 1.0])
    np.testing.assert_allclose(ro.y_bar[0], [0.0, 1.0])
    # d: array 0 empty, array 1 bucket 0 holds b (y = 0)
    np.testing.assert_allclose(ro.weights[1], [0.0, 1.0])
    np.testing.assert_allclose(ro.count[1], [0.0, 1.0])
    assert np.isfinite(ro.y_bar).all() and np.isfinite(ro.y_bar_base).all()


def test_compensation_by_hand():
    keys = np.array([A, C, D])
    y_base = np.array([0.3, 0.3, 0.3])
    # gamma = 1: y_bar(a) = 0.8 (tau 1), y_bar(c) = 1, y_bar(d) = 0
    got = hand_memory(tau=1.0, lam=0.5).compensate(keys, y_base)
    np.testing.assert_allclose(got, [0.3 + 0.5 * (0.8 - 0.3), 0.65, 0.15])
    # gamma = 0.25: y_err(a) = 0.8 - (0.25 * 0.3 + 0.75 * 0.4) = 0.425
    got = hand_memory(tau=1.0, lam=0.5, gamma=0.25).compensate(keys[:1], y_base[:1])
    np.testing.assert_allclose(got, [0.3 + 0.5 * 0.425])
    # gamma = 0: the neighbours' mean error, y_bar - y_bar_base = 0.4, whatever y_base is
    got = hand_memory(tau=1.0, lam=1.0, gamma=0.0).compensate(keys[:1], np.array([0.1]))
    np.testing.assert_allclose(got, [0.1 + 0.4])


def test_compensation_is_clipped_to_unit_interval():
    mem = ErrorMemory(2, n_bits=1, n_arrays=1, projections=EYE[:, :1], lam=1.0)
    mem.write(np.array([A, D]), np.array([3.0, -2.0]), np.array([0.5, 0.5]))
    np.testing.assert_array_equal(mem.compensate(np.array([A, D]), np.array([0.5, 0.5])), [1, 0])


def test_weights_are_softmax_of_log_count_over_tau():
    rng = np.random.default_rng(3)
    for tau in (0.1, 0.3, 2.0):  # 0.1 takes the integer-power path, 0.3 np.power
        mem = ErrorMemory(4, n_bits=2, n_arrays=5, tau=tau, seed=1, similarity="log_count")
        mem.write(rng.standard_normal((200, 4)), rng.random(200), rng.random(200))
        ro = mem.read(rng.standard_normal((50, 4)))
        with np.errstate(divide="ignore"):
            logits = np.log(ro.count) / tau  # -inf for empty buckets
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(ro.weights, expected, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(ro.weights.sum(axis=1), 1.0)


# ---------------------------------------------------------------- formulas, edge cases
def populated(seed=0, **kw) -> tuple[ErrorMemory, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mem = ErrorMemory(8, n_bits=3, n_arrays=6, seed=seed, **kw)
    mem.write(rng.standard_normal((2000, 8)), (rng.random(2000) < 0.7) * 1.0, rng.random(2000))
    keys = rng.standard_normal((300, 8))
    return mem, keys, rng.uniform(0.01, 0.99, 300)


def test_lam_zero_returns_y_base_exactly():
    mem, keys, y_base = populated(lam=0.0)
    out = mem.compensate(keys, y_base)
    assert np.array_equal(out, y_base)
    assert out is not y_base


def test_gamma_one_is_convex_combination_with_y_bar():
    for lam in (0.2, 0.5, 1.0):
        mem, keys, y_base = populated(lam=lam, gamma=1.0)
        ro = mem.read(keys)
        assert ro.hit.all()  # 8 buckets per array, 2000 samples: every bucket is filled
        y_bar, _ = ro.pooled()
        np.testing.assert_allclose(mem.compensate(keys, y_base), (1 - lam) * y_base + lam * y_bar)


def test_empty_memory_returns_y_base_unchanged():
    mem = ErrorMemory(8, lam=0.9)
    keys = np.random.default_rng(0).standard_normal((20, 8))
    y_base = np.linspace(0.05, 0.95, 20)
    out = mem.compensate(keys, y_base)
    assert np.array_equal(out, y_base) and np.isfinite(out).all()
    ro = mem.read(keys)
    assert not ro.hit.any()
    assert np.array_equal(ro.weights, np.zeros((20, mem.n_arrays)))
    assert np.isfinite(ro.y_bar).all()


def test_empty_batches():
    mem, _, _ = populated()
    assert mem.write(np.zeros((0, 8)), np.zeros(0), np.zeros(0)) == 0
    assert mem.compensate(np.zeros((0, 8)), np.zeros(0)).shape == (0,)
    assert mem.read(np.zeros((0, 8))).weights.shape == (0, mem.n_arrays)


def test_chunking_gives_the_same_results():
    rng = np.random.default_rng(5)
    keys, y, yb = rng.standard_normal((1000, 8)), rng.random(1000), rng.random(1000)
    queries, q_base = rng.standard_normal((77, 8)), rng.random(77)
    results = []
    for chunk in (4096, 7):
        mem = ErrorMemory(8, n_bits=4, n_arrays=5, gamma=0.7, half_life=300.0)
        mem.chunk_rows = chunk
        mem.write(keys[:600], y[:600], yb[:600])
        mem.write(keys[600:], y[600:], yb[600:])
        ro = mem.read(queries)
        results.append(
            (
                mem.state_dict()["table"],
                ro.weights,
                ro.y_bar,
                ro.count,
                mem.compensate(queries, q_base),
                mem.bucket_index(queries),
            )
        )
    for big, small in zip(*results, strict=True):
        np.testing.assert_allclose(big, small, rtol=1e-12)


# ---------------------------------------------------------------- locality
def test_locality_near_keys_read_their_cluster():
    rng = np.random.default_rng(0)
    dim = 16
    centres = rng.standard_normal((3, dim))  # A, B written; Z never written
    mem = ErrorMemory(dim, n_bits=8, n_arrays=32, seed=0, lam=1.0)
    for centre, p in ((centres[0], 0.9), (centres[1], 0.1)):
        keys = clustered(rng, centre, 500)
        mem.write(keys, (rng.random(500) < p) * 1.0, np.full(500, 0.5))
    near_a, near_b = clustered(rng, centres[0], 100), clustered(rng, centres[1], 100)
    ya, _ = mem.read(near_a).pooled()
    yb, _ = mem.read(near_b).pooled()
    assert abs(ya.mean() - 0.9) < 0.06 and ya.min() > 0.75
    assert abs(yb.mean() - 0.1) < 0.06 and yb.max() < 0.25
    np.testing.assert_allclose(mem.compensate(near_a, np.full(100, 0.5)), ya)  # lam = 1
    # a region nobody wrote to mostly hits empty buckets and then keeps y_base
    far = clustered(rng, centres[2], 100)
    ro = mem.read(far)
    assert ro.hit.mean() < 0.5
    out = mem.compensate(far, np.full(100, 0.5))
    assert np.all(out[~ro.hit] == 0.5)


# ---------------------------------------------------------------- options
def test_sigma_writes_only_large_errors():
    mem = ErrorMemory(2, n_bits=1, n_arrays=1, projections=EYE[:, :1], sigma=0.3, tau=1.0)
    y = np.array([1.0, 1.0, 0.0, 0.0])
    y_base = np.array([0.9, 0.2, 0.1, 0.6])  # errors .1, .8, .1, .6: only the 2nd, 4th kept
    stored = mem.write(np.array([A, A, A, A]), y, y_base)
    assert stored == 2 and mem.n_written == 2 and mem.n_seen == 4
    np.testing.assert_allclose(mem.state_dict()["table"][:, 0, 1], [2.0, 1.0, 0.8])
    ro = mem.read(np.array([A]))
    np.testing.assert_allclose(ro.y_bar, [[0.5]])
    # sigma = 0 writes everything, exact hits included
    mem0 = ErrorMemory(2, n_bits=1, n_arrays=1, projections=EYE[:, :1])
    assert mem0.write(np.array([A]), np.array([0.5]), np.array([0.5])) == 1


def test_reset_empties_everything():
    mem, keys, y_base = populated(half_life=100.0)
    before = mem.state_dict()
    mem.reset()
    after = mem.state_dict()
    assert not after["table"].any() and after["total"] == 0.0
    assert mem.n_written == 0 and mem.n_seen == 0
    assert np.array_equal(mem.compensate(keys, y_base), y_base)
    np.testing.assert_array_equal(after["projections"], before["projections"])  # hash kept


def test_half_life_halves_old_samples():
    mem = ErrorMemory(2, n_bits=1, n_arrays=1, projections=EYE[:, :1], half_life=4.0)
    mem.write(np.array([A]), np.array([1.0]), np.array([0.5]))  # clock 1
    mem.write(np.array([D] * 4), np.zeros(4), np.zeros(4))  # clock 5: 4 samples = 1 half-life
    ro = mem.read(np.array([A, D]))
    np.testing.assert_allclose(ro.count[:, 0], [0.5, 4.0])  # d: 4 samples, all fresh
    np.testing.assert_allclose(ro.y_bar[:, 0], [1.0, 0.0])  # decay does not bias means
    mem.write(np.array([A]), np.array([0.0]), np.array([0.5]))  # clock 6
    old = 0.5 ** (5 / 4)
    ro = mem.read(np.array([A]))
    np.testing.assert_allclose(ro.count[0, 0], old + 1.0)
    np.testing.assert_allclose(ro.y_bar[0, 0], old / (old + 1.0))


def test_inflated_weights_equal_eager_decay():
    rng = np.random.default_rng(7)
    half_life = 50.0
    mem = ErrorMemory(3, n_bits=3, n_arrays=4, half_life=half_life, seed=2)
    eager = np.zeros((3, 4 * 8))
    for n in (5, 40, 1, 120, 17, 60):
        keys, y, yb = rng.standard_normal((n, 3)), rng.random(n), rng.random(n)
        eager *= 0.5 ** (n / half_life)  # the O(table) definition of the decay
        flat = (mem.bucket_index(keys) + np.arange(4) * 8).ravel()
        for row, vals in enumerate((np.ones(n), y, yb)):
            np.add.at(eager[row], flat, np.repeat(vals, 4))
        mem.write(keys, y, yb)
    state = mem.state_dict()
    np.testing.assert_allclose(state["table"].reshape(3, -1), eager, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state["total"], eager[0].sum() / 4, rtol=1e-12)


def test_decay_survives_the_rescaling_of_a_long_stream():
    # 2,000 half-lives: the inflation is rescaled several times; reads stay exact
    mem = ErrorMemory(2, n_bits=1, n_arrays=1, projections=EYE[:, :1], half_life=1.0)
    for _ in range(2000):
        mem.write(np.array([A]), np.array([1.0]), np.array([0.5]))
    mem.write(np.array([D]), np.array([0.0]), np.array([0.5]))
    ro = mem.read(np.array([A, D]))
    np.testing.assert_allclose(ro.count[:, 0], [1.0, 1.0])  # sum of 0.5**k over k >= 1, and 1
    np.testing.assert_allclose(ro.y_bar[:, 0], [1.0, 0.0])
    assert np.isfinite(mem.state_dict()["table"]).all()


def test_state_dict_round_trip():
    mem, keys, y_base = populated(half_life=500.0, gamma=0.8, lam=0.3, tau=0.2, sigma=0.05)
    state = mem.state_dict()
    clone = ErrorMemory.from_state_dict(state)
    assert clone.config() == mem.config()
    np.testing.assert_array_equal(clone.compensate(keys, y_base), mem.compensate(keys, y_base))
    other = ErrorMemory(8, n_bits=3, n_arrays=6, seed=99)  # same shape, other hyperplanes
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.compensate(keys, y_base), mem.compensate(keys, y_base))
    # the state is a copy: later writes do not leak into it, and the clone is independent
    mem.write(keys, np.ones(300), y_base)
    assert not np.array_equal(state["table"], mem.state_dict()["table"])
    np.testing.assert_array_equal(clone.state_dict()["table"], state["table"])
    with pytest.raises(ValueError, match="key_dim, n_bits, n_arrays"):
        ErrorMemory(8, n_bits=4, n_arrays=6).load_state_dict(state)
    with pytest.raises(ValueError, match="state_dict"):
        other.load_state_dict({"table": 1})


def test_memory_size_is_constant():
    rng = np.random.default_rng(1)
    mem = ErrorMemory(8, n_bits=6, n_arrays=4, half_life=1000.0)
    nbytes = mem.nbytes
    assert nbytes == 3 * 4 * 64 * 8 + 8 * 4 * 6 * 4  # table + projections
    for _ in range(20):
        mem.write(rng.standard_normal((1000, 8)), rng.random(1000), rng.random(1000))
    assert mem.nbytes == nbytes and mem.n_written == 20_000
    assert mem.state_dict()["table"].shape == (3, 4, 64)


def test_projections_are_seeded():
    a, b, c = ErrorMemory(5, seed=1), ErrorMemory(5, seed=1), ErrorMemory(5, seed=2)
    assert a.projections.shape == (5, 32 * 8) and a.projections.dtype == np.float32
    np.testing.assert_array_equal(a.projections, b.projections)
    assert not np.array_equal(a.projections, c.projections)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_bits": 25}, "n_bits"),
        ({"n_bits": 0}, "n_bits"),
        ({"n_arrays": 0}, "n_arrays"),
        ({"tau": 0.0}, "tau"),
        ({"tau": -1.0}, "tau"),
        ({"lam": 1.5}, "lam"),
        ({"lam": -0.1}, "lam"),
        ({"gamma": 2.0}, "gamma"),
        ({"sigma": -1.0}, "sigma"),
        ({"half_life": 0.0}, "half_life"),
        ({"projections": np.ones((4, 3))}, "projections"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ErrorMemory(4, **kwargs)


def test_bad_hyperparameter_assignment():
    mem = ErrorMemory(4)
    with pytest.raises(ValueError, match="lam"):
        mem.lam = 1.01
    with pytest.raises(ValueError, match="tau"):
        mem.tau = 0.0


def test_bad_inputs():
    mem = ErrorMemory(4)
    keys, y, yb = np.zeros((3, 4)), np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match=r"keys must have shape \(n, key_dim=4\)"):
        mem.write(np.zeros((3, 5)), y, yb)
    with pytest.raises(ValueError, match="key_dim"):
        mem.read(np.zeros(4))  # a single key must be passed as (1, key_dim)
    with pytest.raises(ValueError, match="keys contain NaN or inf"):
        mem.compensate(np.array([[0, np.nan, 0, 0]]), np.zeros(1))
    with pytest.raises(ValueError, match="keys contain NaN or inf"):
        mem.write(np.array([[0, 0, np.inf, 0]]), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        mem.write(keys, np.array([0, np.inf, 0]), yb)
    with pytest.raises(ValueError, match="y_base contains NaN or inf"):
        mem.write(keys, y, np.array([0, np.nan, 0]))
    with pytest.raises(ValueError, match="y_base contains NaN or inf"):
        mem.compensate(keys, np.array([0, np.nan, 0]))
    with pytest.raises(ValueError, match=r"y must be a 1-D array .* \(length 3\)"):
        mem.write(keys, np.zeros(2), yb)
    with pytest.raises(ValueError, match=r"y_base must be a 1-D array .* \(length 3\)"):
        mem.write(keys, y, np.zeros(4))
    with pytest.raises(ValueError, match="y_base must be a 1-D array"):
        mem.compensate(keys, np.zeros((3, 1)))
    assert mem.n_written == 0 and mem.n_seen == 0  # nothing half-written


# ---------------------------------------------------------------- benchmark smoke test
def test_bench_memory_smoke():
    from driftrank.experiments.bench_memory import bench_memory

    res = bench_memory(
        batch=128, key_dim=8, n_bits=4, n_arrays=4, n_stored=1000, repeats=2, faiss_repeats=1
    )
    for key in ("writes_per_s", "reads_per_s", "compensates_per_s"):
        assert res[key] > 0
    assert res["memory_nbytes"] == ErrorMemory(8, n_bits=4, n_arrays=4).nbytes
    if res["faiss_query_batch_ms"] is None:
        assert "faiss" in res["faiss_note"]
    else:
        assert res["read_speedup_vs_faiss"] > 0 and res["faiss_index_nbytes"] == 1000 * 8 * 4
