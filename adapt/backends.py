"""Where the LAST search runs. ``LocalBackend`` runs it in-process; ``RayBackend``
(:mod:`driftrank.adapt.ray_backend`) on a pool of Ray actors. Both expose ``search(user,
candidates, candidate_ids, batch_index, memory=None) -> LastResult``, ``search_many(requests)``
(an iterator of results, in order) and ``close()``.

Same results for the same seed: every request's sampler is seeded from ``(seed, batch_index,
row)`` (see :func:`driftrank.adapt.requests.request_seed`), where ``row`` is the request's index
in the *call*, whatever chunk or actor processes it. The served slates and winners are
identical; scores may differ in the last float32 bit, because a chunk is a smaller matrix than
the whole batch and the BLAS kernels sum in a different order for different sizes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np

from .last import LastSearch
from .last_result import LastResult

__all__ = ["LocalBackend"]

Request = tuple  # (user, candidates, candidate_ids, batch_index)


def row_chunks(b: int, n: int) -> list[tuple[int, int]]:
    """``n`` contiguous, nearly equal [start, stop) chunks of ``b`` rows (none empty)."""
    n = max(1, min(n, b))
    edges = np.linspace(0, b, n + 1).round().astype(int)
    return [(int(a), int(z)) for a, z in zip(edges[:-1], edges[1:], strict=True) if z > a]


def unpack_request(request) -> tuple:
    if not isinstance(request, (tuple, list)) or not 3 <= len(request) <= 4:
        raise ValueError(
            "each request must be (user, candidates, candidate_ids[, batch_index]), "
            f"got {type(request).__name__}"
        )
    user, cand, ids = request[:3]
    return user, cand, ids, (request[3] if len(request) == 4 else 0)


# -- local ---------------------------------------------------------------------------------------


class LocalBackend:
    """Runs the search in-process: all candidates of a micro-batch as one torch computation.

    ``micro_batch``: split larger calls into chunks of at most this many requests (bounded
    memory); results are the same as one chunk, since seeding is per request.
    """

    name = "local"

    def __init__(self, search: LastSearch, *, micro_batch: int | None = None):
        if not isinstance(search, LastSearch):
            raise ValueError(f"search must be a LastSearch, got {type(search).__name__}")
        if micro_batch is not None and (not isinstance(micro_batch, int) or micro_batch < 1):
            raise ValueError(f"micro_batch must be a positive int or None, got {micro_batch!r}")
        self.search_impl = search
        self.micro_batch = micro_batch
        self._closed = False

    def search(self, user, candidates, candidate_ids=None, batch_index: int = 0, *,
               memory=None) -> LastResult:
        """Serve a batch in-process (``memory`` is accepted for symmetry with ``RayBackend``:
        the local judge reads its memory directly)."""
        if self._closed:
            raise RuntimeError("this LocalBackend is closed")
        t0 = time.perf_counter()
        b = len(user)
        if self.micro_batch is None or b <= self.micro_batch:
            return self.search_impl.search(user, candidates, candidate_ids, batch_index)
        parts = []
        for a in range(0, b, self.micro_batch):
            z = min(b, a + self.micro_batch)
            ids = None if candidate_ids is None else candidate_ids[a:z]
            parts.append(
                self.search_impl.search(user[a:z], candidates[a:z], ids, batch_index, row_offset=a)
            )
        out = LastResult.concat(parts)
        out.timing["total"] = time.perf_counter() - t0
        return out

    def search_many(self, requests: Iterable) -> Iterator[LastResult]:
        """Results of ``(user, candidates, candidate_ids[, batch_index])`` requests, in order."""
        for request in requests:
            yield self.search(*unpack_request(request))

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
