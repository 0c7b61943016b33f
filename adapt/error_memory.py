"""ReLoop2 error memory: a constant-size LSH sketch of recent prediction errors.

Reference: J. Zhu, G. Cai, J. Huang, Z. Dong, R. Tang, W. Zhang, "ReLoop2: Building
Self-Adaptive Recommendation Models via Responsive Error Compensation Loop", KDD 2023.

Why a memory at all
-------------------
The base model (here: the evaluator) is retrained slowly. Between retrainings the world drifts
and the model keeps making the *same* mistakes on the *same* kind of input. ReLoop2 remembers the
labels ``y`` that arrived for recent inputs together with what the base model predicted for them
(``y_base``), indexed by the model's hidden vector (the *key*). At serving time the memory is
queried with the key of a new input and the base prediction is nudged towards what actually
happened on similar inputs. Nothing is trained: a write is an addition, a read is a lookup.

The sketch
----------
``R`` repeated arrays (``n_arrays``), each with ``2**L`` buckets (``n_bits = L``). Array ``r``
hashes a key ``k`` with ``L`` sign random projections (SimHash)::

    bit_j(k) = [ <k, p_{r,j}> > 0 ],      bucket_r(k) = sum_j bit_j(k) * 2**j

so two keys at angle ``theta`` share a bucket of one array with probability
``(1 - theta / pi) ** L``: near keys collide, far keys rarely do, and ``R`` independent arrays
smooth out the unlucky splits of a cluster by one hyperplane. All ``R * L`` projections are one
``(key_dim, R * L)`` float32 matrix, so hashing a batch is one matmul plus a bit packing (a
float32 dot with powers of two, exact because ``L <= 24``).

A bucket holds three numbers: ``count``, ``sum_y`` and ``sum_y_base``. Memory is
``3 * R * 2**L`` float64 numbers and never grows, whatever is written. Writes are O(1) per
sample and vectorised (``np.add.at`` on the flattened bucket index, array ``r`` offset by
``r * 2**L``).

Read-out
--------
For a query key, array ``r`` returns its bucket's ``count c_r`` and the bucket means
``y_bar_r = sum_y / c_r`` and ``y_bar_base_r = sum_y_base / c_r``. The ``R`` read-outs are
combined by attention: a softmax over the arrays at temperature ``tau`` of a similarity
``s_r``, restricted to non-empty buckets (an empty bucket holds no evidence: weight 0).

``similarity="share"`` (the default, the paper's): ``s_r = c_r / sum_b c_b``, the bucket's share
of its array's count, a kernel-density estimate of the query's neighbourhood. Every array holds
one entry per sample, so the denominator is the (decayed) number of samples written, the same
for all arrays. Shares are small, so at the paper's ``tau = 0.1`` the weights stay close to
uniform over the non-empty arrays and only a bucket holding a sizeable part of the whole stream
dominates: each array votes, and one unlucky collision cannot take over the read-out.

``similarity="log_count"``: ``s_r = log(c_r)``, so ``w_r`` is proportional to ``c_r**(1/tau)``.
At ``tau = 1`` that is precision weighting (the read-out is the pooled mean over everything the
query collided with); at ``tau = 0.1`` it keeps only the most crowded bucket, which is where
unrelated keys collided: kept as a named option, not the default.

Compensation
------------
With ``y_bar = sum_r w_r y_bar_r`` and ``y_bar_base = sum_r w_r y_bar_base_r``::

    y_err       = y_bar - (gamma * y_base + (1 - gamma) * y_bar_base)
    compensated = clip(y_base + lam * y_err, 0, 1)

so ``lam = 0`` returns ``y_base``; ``gamma = 1`` (the default) pulls the prediction toward the
neighbours' labels, ``(1 - lam) * y_base + lam * y_bar``; ``gamma = 0`` adds the neighbours'
mean error ``y_bar - y_bar_base`` and keeps the base model's ranking inside a bucket. (An
earlier form, ``gamma * y_bar + (1 - gamma) * y_bar_base - y_base``, used no label at all at
``gamma = 0``; this one interpolates between two error estimates that both do.)
A query whose ``R`` buckets are all empty has no evidence and returns ``y_base`` unchanged.

Options
-------
* ``sigma``: write only samples with ``|y - y_base| > sigma`` (the memory then holds the base
  model's mistakes only; ``sigma = 0`` disables the filter and writes everything).
* ``half_life`` (in samples, default 20,000): exponential forgetting, so that after a shift
  pre-shift labels fade instead of answering for ever; ``None`` keeps everything. Before a
  batch of ``n`` samples is added every stored number (counts and sums) is multiplied by
  ``0.5 ** (n / half_life)``. It is done exactly and for free by inflating instead of decaying:
  a sample written at clock ``t`` is added with weight ``2 ** ((t - t_ref) / half_life)``, so
  every stored number is its decayed value times the same factor ``2 ** ((now - t_ref) /
  half_life)``. Bucket means, count shares and count ratios do not see a common factor; counts
  are divided by it when read. When the factor would grow past ``2 ** 256`` the table is
  rescaled once (O(table), every 256 half-lives). The clock counts every sample offered to
  ``write``, including those the ``sigma`` filter drops: forgetting follows the stream.
* ``reset()``: empty the memory. Call it when the base model is retrained: the stored errors
  were the old model's.

Cost
----
Hashing dominates: ``2 * key_dim * R * L`` flops per key (one float32 matmul); the rest is
``O(R)`` gathers/scatters per key. ``experiments/bench_memory.py`` measures it (figures in the
README). Batches are processed in chunks
with reused scratch buffers, so an instance is not thread-safe: give each thread its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["DEFAULT_HALF_LIFE", "SIMILARITIES", "ErrorMemory", "MemoryReadout"]

SIMILARITIES = ("share", "log_count")
DEFAULT_HALF_LIFE = 20_000.0
_MAX_INFLATION = 256.0  # half-lives between rescalings of the table (2**256 is far from overflow)
_MAX_BITS = 24  # float32 holds every integer below 2**24 exactly: the bit packing relies on it


@dataclass(frozen=True, slots=True)
class MemoryReadout:
    """Per-array read-out of the error memory for a batch of ``n`` query keys.

    All arrays have shape ``(n, R)``. Empty buckets have ``count == 0``, weight 0 and bucket means
    0 (not NaN). ``weights`` sum to 1 over the arrays of a row that hit at least one non-empty
    bucket and to 0 for a row that hit none. ``count`` is the (decayed, with ``half_life``)
    number of samples in the bucket.
    """

    weights: np.ndarray
    y_bar: np.ndarray
    y_bar_base: np.ndarray
    count: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        """``(n,)`` bool: the query found at least one non-empty bucket."""
        return self.weights.sum(axis=1) > 0.0

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """Attention-weighted means ``(y_bar, y_bar_base)``, shape ``(n,)``; 0 where no hit."""
        return (
            np.einsum("nr,nr->n", self.weights, self.y_bar),
            np.einsum("nr,nr->n", self.weights, self.y_bar_base),
        )


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}; pass a value in that range")
    return value


def _int_power_inplace(x: np.ndarray, k: int, tmp: np.ndarray) -> None:
    """``x **= k`` for an integer ``k >= 1`` by repeated squaring (np.power with a float
    exponent costs several times more; 1/tau is an integer for the usual tau = 0.1)."""
    if k == 1:
        return
    np.copyto(tmp, x)  # tmp = x ** (2**i) as the bits of k are consumed
    k -= 1  # x already holds one factor
    while k:
        if k & 1:
            x *= tmp
        k >>= 1
        if k:
            tmp *= tmp


class ErrorMemory:
    """ReLoop2 error memory (see the module docstring for the sketch and the formulas).

    Parameters
    ----------
    key_dim: length of the key vectors (e.g. the evaluator's hidden size).
    n_bits: ``L``, sign projections per array; ``2**L`` buckets per array. 1..24. More bits make
        buckets narrower (more local, fewer samples each); the paper uses up to 16. The table
        takes ``24 * R * 2**L`` bytes: 12 GiB at L = 24, R = 32.
    n_arrays: ``R``, repeated independent arrays (tens to low hundreds in the paper).
    gamma: which prediction the neighbours' label mean is compared with in ``y_err``: this
        sample's base prediction (1) or the neighbours' mean base prediction (0).
    lam: compensation strength in [0, 1].
    tau: softmax temperature of the attention over the ``R`` arrays, > 0.
    sigma: write only samples with ``|y - y_base| > sigma``; 0 writes everything.
    half_life: forget old samples with this half-life, counted in samples offered to ``write``
        (default 20,000); None keeps everything until ``reset()``.
    similarity: "share" (the paper's bucket share of its array's count, default) or
        "log_count" (see the module docstring).
    seed: seed of ``np.random.default_rng`` drawing the Gaussian projections.
    projections: optional explicit ``(key_dim, R * L)`` projection matrix (used instead of
        ``seed``); column ``r * L + j`` is bit ``j`` (weight ``2**j``) of array ``r``. Meant for
        tests and for sharing hyperplanes between memories.
    """

    def __init__(
        self,
        key_dim: int,
        n_bits: int = 8,
        n_arrays: int = 32,
        gamma: float = 1.0,
        lam: float = 0.5,
        tau: float = 0.1,
        sigma: float = 0.0,
        half_life: float | None = DEFAULT_HALF_LIFE,
        seed: int = 0,
        similarity: str = "share",
        *,
        projections: np.ndarray | None = None,
    ) -> None:
        if isinstance(key_dim, bool) or int(key_dim) != key_dim or key_dim < 1:
            raise ValueError(f"key_dim must be a positive integer, got {key_dim!r}")
        if isinstance(n_bits, bool) or int(n_bits) != n_bits or not 1 <= n_bits <= _MAX_BITS:
            raise ValueError(
                f"n_bits (L) must be an integer in 1..{_MAX_BITS}, got {n_bits!r}; "
                f"2**L buckets per array, so use e.g. 8..16"
            )
        if isinstance(n_arrays, bool) or int(n_arrays) != n_arrays or n_arrays < 1:
            raise ValueError(f"n_arrays (R) must be an integer >= 1, got {n_arrays!r}")
        if half_life is not None:
            half_life = float(half_life)
            if not (math.isfinite(half_life) and half_life > 0.0):
                raise ValueError(
                    f"half_life must be a positive number of samples or None, got {half_life!r}"
                )
        if similarity not in SIMILARITIES:
            raise ValueError(
                f"similarity must be one of {SIMILARITIES}, got {similarity!r}; "
                f"'share' is the ReLoop2 paper's"
            )
        self._similarity = similarity
        self._key_dim = int(key_dim)
        self._n_bits = int(n_bits)
        self._n_arrays = int(n_arrays)
        self._half_life = half_life
        self._seed = int(seed)
        self.gamma = gamma
        self.lam = lam
        self.tau = tau
        self.sigma = sigma

        n_proj = self._n_arrays * self._n_bits
        if projections is None:
            rng = np.random.default_rng(self._seed)
            proj = rng.standard_normal((self._key_dim, n_proj), dtype=np.float32)
        else:
            proj = np.array(projections, dtype=np.float32)  # a copy: callers may reuse theirs
            if proj.shape != (self._key_dim, n_proj):
                raise ValueError(
                    f"projections must have shape (key_dim, n_arrays * n_bits) = "
                    f"{(self._key_dim, n_proj)}, got {proj.shape}"
                )
            if not np.isfinite(proj).all():
                raise ValueError("projections contain NaN or inf; pass finite hyperplanes")
        # stored transposed, (R*L, key_dim): the matmul then yields the (R, m) layout directly
        self._proj_t = np.ascontiguousarray(proj.T)
        self._pow2 = (2.0 ** np.arange(self._n_bits)).astype(np.float32)
        self._proj_t_torch = torch.from_numpy(self._proj_t)  # views of the same memory
        self._pow2_torch = torch.from_numpy(self._pow2).view(1, 1, -1)
        self._offsets = np.arange(self._n_arrays, dtype=np.intp) << self._n_bits

        n_buckets = 1 << self._n_bits
        # table[0] = count, table[1] = sum_y, table[2] = sum_y_base; each (R, 2**L)
        self._table = np.zeros((3, self._n_arrays, n_buckets), dtype=np.float64)
        self._flat = self._table.reshape(3, -1)  # views, flat index = r * 2**L + bucket
        self._clock = 0.0  # samples offered to write() since reset (drives the decay)
        self._total = 0.0  # samples stored (inflated like the table): every array's total count
        self._ref = 0.0  # clock at which the inflation factor was last 1
        self._work: dict[str, np.ndarray] = {}  # scratch buffers, see chunk_rows
        self._n_written = 0  # samples actually stored (after the sigma filter)
        self._version = 0  # bumped by every change of the stored numbers

    # ------------------------------------------------------------------ hyperparameters
    @property
    def key_dim(self) -> int:
        return self._key_dim

    @property
    def n_bits(self) -> int:
        return self._n_bits

    @property
    def n_arrays(self) -> int:
        return self._n_arrays

    @property
    def half_life(self) -> float | None:
        """Fixed at construction (the stored numbers are inflated by it)."""
        return self._half_life

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def similarity(self) -> str:
        return self._similarity

    @property
    def gamma(self) -> float:
        return self._gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        self._gamma = _check_unit("gamma", value)

    @property
    def lam(self) -> float:
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        self._lam = _check_unit("lam", value)

    @property
    def tau(self) -> float:
        return self._tau

    @tau.setter
    def tau(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"tau must be a finite number > 0, got {value!r}; the paper uses 0.1")
        self._tau = value

    @property
    def sigma(self) -> float:
        return self._sigma

    @sigma.setter
    def sigma(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"sigma must be a finite number >= 0, got {value!r}")
        self._sigma = value

    @property
    def projections(self) -> np.ndarray:
        """The ``(key_dim, R * L)`` float32 hyperplanes (a read-only view)."""
        view = self._proj_t.T
        view.flags.writeable = False
        return view

    @property
    def n_written(self) -> int:
        """Samples stored since the last reset (after the sigma filter, before any decay)."""
        return self._n_written

    @property
    def version(self) -> int:
        """A counter bumped by every write, reset and load: equal versions, equal contents."""
        return self._version

    @property
    def n_seen(self) -> int:
        """Samples offered to ``write`` since the last reset (the decay clock)."""
        return int(self._clock)

    @property
    def nbytes(self) -> int:
        """Bytes held by the memory: bucket table and projections.

        Constant for a given configuration: writes never allocate more.
        """
        return int(self._table.nbytes + self._proj_t.nbytes)

    def __repr__(self) -> str:
        return (
            f"ErrorMemory(key_dim={self._key_dim}, n_bits={self._n_bits}, "
            f"n_arrays={self._n_arrays}, gamma={self._gamma}, lam={self._lam}, tau={self._tau}, "
            f"sigma={self._sigma}, half_life={self._half_life}, seed={self._seed}, "
            f"similarity={self._similarity!r}; "
            f"{self._n_written} written)"
        )

    # ------------------------------------------------------------------ input checks
    def _keys(self, keys: Any) -> np.ndarray:
        k = np.asarray(keys)
        if k.ndim != 2 or k.shape[1] != self._key_dim:
            raise ValueError(
                f"keys must have shape (n, key_dim={self._key_dim}), got {k.shape}; "
                f"reshape a single key with keys[None, :] and check the memory's key_dim"
            )
        if not np.issubdtype(k.dtype, np.number) or np.issubdtype(k.dtype, np.complexfloating):
            raise ValueError(f"keys must be real numbers, got dtype {k.dtype}")
        k = np.ascontiguousarray(k, dtype=np.float32)
        if not np.isfinite(k).all():
            raise ValueError(
                "keys contain NaN or inf (or values beyond float32 range); "
                "drop or fix those rows before calling the memory"
            )
        return k

    @staticmethod
    def _values(name: str, values: Any, n: int) -> np.ndarray:
        v = np.asarray(values)
        if v.ndim != 1 or v.shape[0] != n:
            raise ValueError(
                f"{name} must be a 1-D array with one value per key (length {n}), got shape "
                f"{v.shape}"
            )
        if not np.issubdtype(v.dtype, np.number) and v.dtype != np.bool_:
            raise ValueError(f"{name} must be numeric, got dtype {v.dtype}")
        v = np.asarray(v, dtype=np.float64)
        if not np.isfinite(v).all():
            raise ValueError(f"{name} contains NaN or inf; drop or fix those samples first")
        return v

    # ------------------------------------------------------------------ core
    # Layout and buffers, both chosen for speed (measured, batch 4096, R = 32):
    # * Internally everything is array-major, shape (R, m): the reductions over the R arrays
    #   (max, sum, weighted mean) then run along the long contiguous axis, ~10x faster than
    #   reducing the short last axis of an (m, R) array. ``read`` returns (n, R) views (.T).
    # * A batch is processed in chunks of at most ``chunk_rows`` rows whose temporaries live in
    #   scratch buffers kept between calls: ~10 MB of temporaries allocated afresh per call come
    #   from mmap and their page faults cost more than the arithmetic (2x slower reads). The
    #   chunking also bounds the scratch size for huge batches. Consequence: an instance must not
    #   be used from several threads at once.
    chunk_rows = 4096

    def _scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A reusable buffer of at least prod(shape) elements, returned as a view of `shape`."""
        size = math.prod(shape)
        buf = self._work.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._work[name] = buf
        return buf[:size].reshape(shape)

    def _index(self, keys32: np.ndarray) -> np.ndarray:
        """``(R, m)`` flat bucket indices of one chunk (a scratch buffer, valid until the next
        call): one matmul, sign bits, one batched float32 dot with powers of two."""
        m = keys32.shape[0]
        r, L = self._n_arrays, self._n_bits
        z = self._scratch("z", (r * L, m), np.float32)
        # torch's matmul (on numpy memory, no copy): it follows torch.set_num_threads, which the
        # agents and actors set, while numpy's BLAS would start its own threads and, on a busy
        # machine, spin on them (measured: 20x slower reads at small batches)
        torch.matmul(self._proj_t_torch, torch.from_numpy(keys32).T, out=torch.from_numpy(z))
        np.greater(z, 0.0, out=z, casting="unsafe")  # sign bits as 0.0 / 1.0, in place
        packed = self._scratch("packed", (r, m), np.float32)
        torch.matmul(self._pow2_torch, torch.from_numpy(z).view(r, L, m),
                     out=torch.from_numpy(packed).view(r, 1, m))  # exact: integers < 2**24
        idx = self._scratch("idx", (r, m), np.intp)
        np.copyto(idx, packed, casting="unsafe")
        idx += self._offsets[:, None]
        return idx

    def _deflation(self) -> float:
        """The factor turning stored (inflated) numbers into their decayed values now."""
        if self._half_life is None:
            return 1.0
        return 2.0 ** (-(self._clock - self._ref) / self._half_life)

    def bucket_index(self, keys: Any) -> np.ndarray:
        """Bucket of each key in each array, shape ``(n, R)``, values in ``0 .. 2**L - 1``."""
        k = self._keys(keys)
        out = np.empty((k.shape[0], self._n_arrays), dtype=np.intp)
        for lo in range(0, k.shape[0], self.chunk_rows):
            hi = min(lo + self.chunk_rows, k.shape[0])
            np.subtract(self._index(k[lo:hi]), self._offsets[:, None], out=out[lo:hi].T)
        return out

    def write(self, keys: Any, y: Any, y_base: Any) -> int:
        """Store labelled samples; returns how many were stored (after the sigma filter).

        keys: ``(n, key_dim)``; y: ``(n,)`` observed labels; y_base: ``(n,)`` the base model's
        predictions for those samples (made when they were served). With ``half_life`` the whole
        batch counts as written at the same instant (after the decay of its ``n`` samples).
        """
        k = self._keys(keys)
        n = k.shape[0]
        yv = self._values("y", y, n)
        yb = self._values("y_base", y_base, n)
        if n == 0:
            return 0
        if self._sigma > 0.0:
            keep = np.abs(yv - yb) > self._sigma
            if not keep.all():
                k, yv, yb = k[keep], yv[keep], yb[keep]
        now = self._clock + n
        self._clock = now
        weight = 1.0
        if self._half_life is not None:
            exponent = (now - self._ref) / self._half_life
            if exponent > _MAX_INFLATION:  # rescale to the present, once in a long while
                self._table *= 2.0 ** -exponent
                self._total *= 2.0 ** -exponent
                self._ref, exponent = now, 0.0
            weight = 2.0 ** exponent
        m_total = k.shape[0]
        self._total += m_total * weight
        cnt, sum_y, sum_b = self._flat
        r = self._n_arrays
        for lo in range(0, m_total, self.chunk_rows):
            hi = min(lo + self.chunk_rows, m_total)
            m = hi - lo
            flat = self._index(k[lo:hi]).reshape(-1)  # array-major: entry r * m + i
            vals = self._scratch("vals", (r, m), np.float64)
            np.add.at(cnt, flat, weight)
            np.multiply(yv[None, lo:hi], weight, out=vals)
            np.add.at(sum_y, flat, vals.reshape(-1))
            np.multiply(yb[None, lo:hi], weight, out=vals)
            np.add.at(sum_b, flat, vals.reshape(-1))
        self._n_written += m_total
        self._version += 1
        return m_total

    def _readout_chunk(
        self,
        flat: np.ndarray,
        w: np.ndarray,
        y_bar: np.ndarray,
        y_bar_base: np.ndarray,
        c: np.ndarray,
    ) -> np.ndarray:
        """Fill the ``(R, m)`` outputs for the flat bucket indices of one chunk; return the
        ``(m,)`` bool mask of queries that hit at least one non-empty bucket."""
        cnt, sum_y, sum_b = self._flat
        tiny = np.finfo(np.float64).tiny
        cnt.take(flat, out=c)
        sum_y.take(flat, out=y_bar)
        sum_b.take(flat, out=y_bar_base)
        # Bucket means from the stored numbers: decay scales sums and count alike. An empty
        # bucket has sums 0, so dividing by max(c, tiny) gives 0 there, never NaN.
        np.maximum(c, tiny, out=w)
        y_bar /= w
        y_bar_base /= w
        deflate = self._deflation()
        if deflate != 1.0:
            c *= deflate  # decayed counts
        cmax = c.max(axis=0, keepdims=True)
        hit = cmax[0] > 0.0
        if self._similarity == "share":
            # softmax_r(c_r / (total * tau)) over non-empty buckets, shifted by the max for
            # stability; empty buckets are zeroed afterwards (no evidence, no weight)
            total = self._total * deflate
            scale = 1.0 / (total * self._tau) if total > 0.0 else 0.0
            np.subtract(c, cmax, out=w)
            w *= scale
            np.exp(w, out=w)
            w *= c > 0.0
        else:
            # softmax_r(log(c_r) / tau) over non-empty buckets == (c_r / max_r c)**(1/tau),
            # normalised: c == 0 gives weight 0 directly, and the ratio in [0, 1] cannot overflow
            np.maximum(cmax, tiny, out=cmax)
            np.divide(c, cmax, out=w)
            inv_tau = 1.0 / self._tau
            if inv_tau.is_integer() and inv_tau <= 64:
                _int_power_inplace(w, int(inv_tau), self._scratch("pow", w.shape, np.float64))
            else:
                np.power(w, inv_tau, out=w)
        wsum = w.sum(axis=0, keepdims=True)
        np.maximum(wsum, tiny, out=wsum)  # queries without any hit keep all-zero weights
        w /= wsum
        return hit

    def read(self, keys: Any) -> MemoryReadout:
        """Per-array read-out and attention weights for ``(n, key_dim)`` query keys."""
        k = self._keys(keys)
        n, r = k.shape[0], self._n_arrays
        # one block for the four outputs: a single large allocation is much cheaper than four
        block = np.empty((4, r, n), dtype=np.float64)
        for lo in range(0, n, self.chunk_rows):
            hi = min(lo + self.chunk_rows, n)
            self._readout_chunk(self._index(k[lo:hi]), *block[:, :, lo:hi])
        return MemoryReadout(
            weights=block[0].T, y_bar=block[1].T, y_bar_base=block[2].T, count=block[3].T
        )

    def compensate(self, keys: Any, y_base: Any) -> np.ndarray:
        """Error-compensated predictions ``clip(y_base + lam * y_err, 0, 1)``, shape ``(n,)``.

        Rows whose buckets are all empty (and every row when ``lam == 0``) return ``y_base``
        unchanged, as float64.
        """
        k = self._keys(keys)
        yb = self._values("y_base", y_base, k.shape[0])
        n, r = k.shape[0], self._n_arrays
        out = yb.copy()
        if self._lam == 0.0 or n == 0:
            return out
        y_mem = np.empty(n, dtype=np.float64)  # y_bar - (1 - gamma) * y_bar_base
        hit = np.empty(n, dtype=bool)
        for lo in range(0, n, self.chunk_rows):
            hi = min(lo + self.chunk_rows, n)
            m = hi - lo
            w, ybar, ybarb, c = (self._scratch(nm, (r, m), np.float64) for nm in "wabc")
            hit[lo:hi] = self._readout_chunk(self._index(k[lo:hi]), w, ybar, ybarb, c)
            if self._gamma != 1.0:
                ybarb *= 1.0 - self._gamma
                ybar -= ybarb
            np.einsum("rm,rm->m", w, ybar, out=y_mem[lo:hi])
        comp = np.clip(yb + self._lam * (y_mem - self._gamma * yb), 0.0, 1.0)
        np.copyto(out, comp, where=hit)
        return out

    def reset(self) -> None:
        """Forget everything (call when the base model is retrained); keeps the hyperplanes."""
        self._table.fill(0.0)
        self._ref = 0.0
        self._clock = 0.0
        self._total = 0.0
        self._n_written = 0
        self._version += 1

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """Constructor arguments (without the projections) as plain Python values."""
        return {
            "key_dim": self._key_dim,
            "n_bits": self._n_bits,
            "n_arrays": self._n_arrays,
            "gamma": self._gamma,
            "lam": self._lam,
            "tau": self._tau,
            "sigma": self._sigma,
            "half_life": self._half_life,
            "seed": self._seed,
            "similarity": self._similarity,
        }

    def state_dict(self) -> dict[str, Any]:
        """Copy of the full state: ``config`` (dict), numpy arrays and the clock counters."""
        return {
            "config": self.config(),
            "projections": self._proj_t.T.copy(),
            "table": self._table * self._deflation(),  # the decayed numbers, as of the clock
            "clock": self._clock,
            "total": self._total * self._deflation(),
            "n_written": self._n_written,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict()``; shapes must match this memory's key_dim, L and R.

        Hyperparameters (gamma, lam, tau, sigma, half_life, seed) are taken from the state.
        """
        try:
            cfg = dict(state["config"])
            proj = np.asarray(state["projections"], dtype=np.float32)
            table = np.asarray(state["table"], dtype=np.float64)
            clock = float(state["clock"])
            total = float(state["total"])
            n_written = int(state["n_written"])
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"not an ErrorMemory state_dict ({exc!r}); pass the dict from state_dict()"
            ) from exc
        mine = (self._key_dim, self._n_bits, self._n_arrays)
        theirs = (cfg.get("key_dim"), cfg.get("n_bits"), cfg.get("n_arrays"))
        if mine != theirs:
            raise ValueError(
                f"state is for (key_dim, n_bits, n_arrays) = {theirs}, this memory is {mine}; "
                f"use ErrorMemory.from_state_dict(state) to build a matching one"
            )
        fresh = ErrorMemory(**cfg, projections=proj)  # validates config and projections
        if table.shape != fresh._table.shape:
            raise ValueError(f"table has shape {table.shape}, expected {fresh._table.shape}")
        fresh._table[...] = table
        fresh._clock = clock
        fresh._ref = clock
        fresh._total = total
        fresh._n_written = n_written
        fresh._version = self._version + 1
        self.__dict__.update(fresh.__dict__)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ErrorMemory:
        """Build a memory from a ``state_dict()``."""
        try:
            cfg = state["config"]
            mem = cls(**cfg, projections=state["projections"])
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"not an ErrorMemory state_dict ({exc!r}); pass the dict from state_dict()"
            ) from exc
        mem.load_state_dict(state)
        return mem
