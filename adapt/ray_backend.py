"""``RayBackend``: the LAST search on a pool of Ray actors holding model replicas.

Why and when: a Ray call has a fixed cost (serialisation, scheduling, two hops), comparable to
one LAST search of a single request on one core. So it pays off when a call carries enough work
to split (large batches, or one request's perturbations spread over actors) and spare cores
exist, or when calls are pipelined (``search_many``) so that actors on other cores or machines
work while the driver prepares the next batch. Figures: README, Benchmarks.

A compensated judge's memory reaches the actors as a read-only snapshot (the alternative,
judging in the driver, would put the evaluator passes, the bulk of the work, back on one core
and add a round trip between the search's phases, since the direction needs the judge's values).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import torch

from ..evaluator.config import EvaluatorConfig
from ..evaluator.model import ListwiseEvaluator
from ..generator.config import GeneratorConfig
from ..generator.model import SlateGenerator
from .backends import row_chunks, unpack_request
from .compensated import CompensatedEvaluator
from .error_memory import ErrorMemory
from .last import LastSearch, select_best
from .last_result import LastResult
from .ray_session import start_ray
from .requests import check_index, check_requests

__all__ = ["RayBackend"]


class _LastWorker:
    """A Ray actor holding one replica of the generator and the evaluator (loaded once) and,
    for a compensated judge, the key settings; the memory arrives with each call."""

    def __init__(
        self, generator_state, evaluator_state, generator_config, evaluator_config, options,
        key_options=None,
    ):
        torch.set_num_threads(1)
        gen = SlateGenerator(GeneratorConfig(**generator_config))
        gen.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in generator_state.items()})
        ev = ListwiseEvaluator(EvaluatorConfig(**evaluator_config))
        ev.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in evaluator_state.items()})
        self.search = LastSearch(gen.eval(), ev.eval(), **options)
        self.key_options = key_options
        self.memory_version = None

    def ready(self) -> int:
        return torch.get_num_threads()

    def run(self, user, candidates, candidate_ids, batch_index: int, row_offset: int,
            version=None, state=None, steps=None):
        if version is not None:  # a read-only snapshot of the driver's memory, once per version
            if version != self.memory_version:
                self.search.judge = CompensatedEvaluator(
                    self.search.evaluator, memory=ErrorMemory.from_state_dict(state),
                    **self.key_options)
                self.memory_version = version
        if steps is None:
            return self.search.search(
                user, candidates, candidate_ids, batch_index, row_offset=row_offset
            )
        all_steps, self.search.steps = self.search.steps, tuple(steps)  # this actor's share
        try:
            return self.search.search(
                user, candidates, candidate_ids, batch_index, row_offset=row_offset
            )
        finally:
            self.search.steps = all_steps


_REMOTE_WORKER = None


def _remote_worker():
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        import ray

        _REMOTE_WORKER = ray.remote(_LastWorker)
    return _REMOTE_WORKER


def _numpy_state(state: Mapping) -> dict[str, np.ndarray]:
    out = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        out[k] = np.ascontiguousarray(v)
    return out


def _config_dict(config, cls) -> dict:
    if isinstance(config, cls):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dataclasses.asdict(cls(**config))  # validates
    raise ValueError(f"expected a {cls.__name__} or a dict of its fields, got {config!r}")


class RayBackend:
    """A pool of Ray actors, each holding model replicas, sharing the requests of every call.

    ``generator_state``/``evaluator_state``: ``state_dict``s, put into the object store once
    (``ray.put``) and loaded once per actor. ``configs``: ``{"generator": GeneratorConfig or
    dict, "evaluator": EvaluatorConfig or dict, "search": LastSearch keyword arguments,
    "compensated": CompensatedEvaluator key settings (optional)}``. With a compensated judge the
    driver's memory reaches the actors as a read-only snapshot, put into the object store once
    per memory version and loaded by each actor once per version (``search(..., memory=)``).

    ``split``: how a call's work is shared. "requests": the B requests are split into
    ``min(n_actors, B // min_rows_per_actor)`` contiguous chunks, one per actor, each carrying
    its row offset so that seeding matches the local backend. "candidates": every actor takes
    the whole batch but only its share of the step sizes (the greedy slate, the resamples and
    the direction are computed by each; the driver merges the candidates and picks the winner).
    "auto" (default): candidates when a call has fewer requests than actors. At most
    ``max_in_flight`` chunk tasks are outstanding (``search_many`` pipelines up to that);
    every ``ray.get``/``ray.wait`` waits at most ``timeout_s`` (then ``TimeoutError``).
    Ray is initialised with ``ray.init(address=address)`` only if it is not already; a
    session started here is shut down by ``close()``.
    """

    name = "ray"

    def __init__(
        self,
        generator_state: Mapping,
        evaluator_state: Mapping,
        configs: Mapping,
        *,
        n_actors: int = 2,
        num_cpus_per_actor: float = 0.5,
        max_in_flight: int | None = None,
        address: str | None = None,
        timeout_s: float = 60.0,
        min_rows_per_actor: int = 1,
        split: str = "auto",
    ):
        import ray

        if not isinstance(n_actors, int) or n_actors < 1:
            raise ValueError(f"n_actors must be a positive int, got {n_actors!r}")
        if not num_cpus_per_actor > 0:
            raise ValueError(f"num_cpus_per_actor must be > 0, got {num_cpus_per_actor!r}")
        if max_in_flight is None:
            max_in_flight = 2 * n_actors
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive int, got {max_in_flight!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if split not in ("auto", "requests", "candidates"):
            raise ValueError(f"split must be 'auto', 'requests' or 'candidates', got {split!r}")
        self.split = split
        if not isinstance(min_rows_per_actor, int) or min_rows_per_actor < 1:
            raise ValueError(
                f"min_rows_per_actor must be a positive int, got {min_rows_per_actor!r}"
            )
        if not isinstance(configs, Mapping) or not {"generator", "evaluator"} <= set(configs):
            raise ValueError(
                "configs must be a mapping with 'generator' and 'evaluator' "
                "(and optionally 'search') entries"
            )
        options = dict(configs.get("search") or {})
        if "judge" in options:
            raise ValueError(
                "a judge cannot be shipped to the actors; pass the compensated evaluator's "
                "key settings as configs['compensated'] and its memory with each call"
            )
        key_options = configs.get("compensated")
        gen_cfg = _config_dict(configs["generator"], GeneratorConfig)
        ev_cfg = _config_dict(configs["evaluator"], EvaluatorConfig)
        gen_state, ev_state = _numpy_state(generator_state), _numpy_state(evaluator_state)
        # build a local replica once: checks states, configs and options before any actor starts
        gen = SlateGenerator(GeneratorConfig(**gen_cfg))
        gen.load_state_dict({k: torch.as_tensor(v) for k, v in gen_state.items()})
        ev = ListwiseEvaluator(EvaluatorConfig(**ev_cfg))
        ev.load_state_dict({k: torch.as_tensor(v) for k, v in ev_state.items()})
        self._shadow = LastSearch(gen.eval(), ev.eval(), **options)

        self.n_actors = n_actors
        self.max_in_flight = max_in_flight
        self.timeout_s = float(timeout_s)
        self.min_rows_per_actor = min_rows_per_actor
        self._owns_ray = start_ray(address)
        self._inflight: set = set()
        self._memory_ref = None
        self._key_options = key_options
        self._next = 0
        self._actors: list = []
        try:
            gen_ref, ev_ref = ray.put(gen_state), ray.put(ev_state)
            worker = _remote_worker().options(num_cpus=num_cpus_per_actor)
            self._actors = [
                worker.remote(gen_ref, ev_ref, gen_cfg, ev_cfg, options, key_options)
                for _ in range(n_actors)
            ]
            self._get([a.ready.remote() for a in self._actors], "start")
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_search(cls, search: LastSearch, **kwargs) -> RayBackend:
        """A pool replicating ``search``'s models and options (``kwargs``: see the class).

        A search judged by a :class:`CompensatedEvaluator` is replicated with its key settings;
        its memory then travels with every call (``memory=compensated.memory``)."""
        configs = {
            "generator": search.generator.config,
            "evaluator": search.evaluator.config,
            "search": search.options(),
        }
        if isinstance(search.judge, CompensatedEvaluator):
            configs["compensated"] = search.judge.key_options()
        elif search.judge is not None:
            raise ValueError(
                "RayBackend can replicate the evaluator or a CompensatedEvaluator judge only; "
                f"this search's judge is a {type(search.judge).__name__} (use LocalBackend)"
            )
        return cls(search.generator.state_dict(), search.evaluator.state_dict(), configs, **kwargs)

    # -- ray plumbing ----------------------------------------------------------------------------

    def _get(self, refs: list, what: str):
        import ray

        try:
            out = ray.get(refs, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError as e:
            raise TimeoutError(
                f"LAST actors did not {what} within {self.timeout_s:g} s "
                f"({len(self._actors)} actors; is the cluster short of CPUs?)"
            ) from e
        finally:
            self._inflight.difference_update(refs)
        return out

    def _wait_for_room(self, n: int) -> None:
        import ray

        while self._inflight and len(self._inflight) + n > self.max_in_flight:
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=self.timeout_s)
            if not ready:
                raise TimeoutError(
                    f"no LAST task finished within {self.timeout_s:g} s "
                    f"({len(self._inflight)} in flight)"
                )
            self._inflight.difference_update(ready)

    def _submit(self, user, candidates, candidate_ids, batch_index, memory=None
                ) -> tuple[list, float]:
        if not self._actors:
            raise RuntimeError("this RayBackend is closed")
        batch_index = check_index("batch_index", batch_index)
        if (memory is None) != (self._key_options is None):
            raise ValueError(
                "pass memory= (the compensated judge's ErrorMemory) exactly when the backend "
                "was built from a compensated search" if memory is None else
                "this backend judges with the plain evaluator; memory= is not used, drop it")
        t0 = time.perf_counter()
        s = self._shadow
        gc = s.generator.config
        user, cand, ids = check_requests(
            user,
            candidates,
            candidate_ids,
            user_dim=gc.user_dim,
            item_dim=gc.item_dim,
            slate_size=s.slate_size,
            need_ids=s.need_ids,
        )
        u, c = user.numpy(), cand.numpy()
        i = None if ids is None else ids.numpy()
        version, state = self._snapshot(memory)
        groups = self._step_groups(len(u))
        if groups is not None:  # one call's perturbations spread over the actors
            self._wait_for_room(len(groups))
            refs = [actor.run.remote(u, c, i, batch_index, 0, version, state, steps)
                    for actor, steps in zip(self._actors, groups, strict=False)]
            self._inflight.update(refs)
            return refs, t0, groups
        n_chunks = min(self.n_actors, max(1, len(u) // self.min_rows_per_actor))
        chunks = row_chunks(len(u), n_chunks)
        self._wait_for_room(len(chunks))
        refs = []
        for j, (a, z) in enumerate(chunks):
            actor = self._actors[(self._next + j) % self.n_actors]
            refs.append(actor.run.remote(u[a:z], c[a:z], None if i is None else i[a:z],
                                         batch_index, a, version, state))
        self._next = (self._next + len(chunks)) % self.n_actors
        self._inflight.update(refs)
        return refs, t0, None

    def _step_groups(self, b: int) -> list[tuple[float, ...]] | None:
        """The step sizes each actor takes when a call's perturbations are spread (``split``
        "candidates", or "auto" with fewer requests than actors), else None."""
        steps = self._shadow.steps
        spread = self.split == "candidates" or (self.split == "auto" and b < self.n_actors)
        if not spread or self._shadow.mode == "serial" or len(steps) < 2 or self.n_actors < 2:
            return None
        n = min(self.n_actors, len(steps))
        return [tuple(steps[j::n]) for j in range(n)]

    def _snapshot(self, memory: ErrorMemory | None):
        """``(version, object ref of the state)`` of ``memory``, put into the object store once
        per change (a memory that has not been written since the last call is not re-sent)."""
        import ray

        if memory is None:
            return None, None
        version = (id(memory), memory.version)
        if self._memory_ref is None or self._memory_ref[0] != version:
            self._memory_ref = (version, ray.put(memory.state_dict()))
        return self._memory_ref

    def _merge_spread(self, parts: list[LastResult], groups) -> LastResult:
        """One result from actors that each tried a share of the step sizes: the greedy slate
        and the resamples come from the first part (every part computed the same ones), the
        offsets from their parts in the search's order, and the winner is chosen again."""
        s = self._shadow
        n_groups, r = len(groups), s.resamples
        first = parts[0]
        b = len(first)
        cols_slates = [first.candidate_slates[:, :1]]
        cols_scores = [first.candidate_scores[:, :1]]
        for j in range(len(s.steps)):
            g, pos = j % n_groups, j // n_groups
            cols_slates.append(parts[g].candidate_slates[:, 1 + pos: 2 + pos])
            cols_scores.append(parts[g].candidate_scores[:, 1 + pos: 2 + pos])
        cols_slates.append(first.candidate_slates[:, first.candidate_slates.shape[1] - r:])
        cols_scores.append(first.candidate_scores[:, first.candidate_scores.shape[1] - r:])
        slates = torch.from_numpy(np.concatenate(cols_slates, axis=1))
        scores = torch.from_numpy(np.concatenate(cols_scores, axis=1))
        winner, scores = select_best(slates, scores, s.min_gain)
        rows = torch.arange(b)
        timing = {k: max(p.timing.get(k, 0.0) for p in parts) for k in first.timing}
        return LastResult(
            slates=slates[rows, winner].numpy().copy(), scores=scores[rows, winner].numpy().copy(),
            base_slates=first.base_slates, base_scores=scores[:, 0].numpy().copy(),
            winner=winner.numpy().copy(), candidate_scores=scores.numpy().copy(),
            labels=s.labels, timing=timing, candidate_slates=slates.numpy().copy())

    def _collect(self, refs: list, t0: float, groups=None) -> LastResult:
        if not refs:
            return self._shadow.search(
                np.zeros((0, self._shadow.generator.config.user_dim), np.float32),
                np.zeros(
                    (0, self._shadow.slate_size, self._shadow.generator.config.item_dim), np.float32
                ),
                np.zeros((0, self._shadow.slate_size), np.int64),
            )
        parts = self._get(refs, "answer")
        out = LastResult.concat(parts) if groups is None else self._merge_spread(parts, groups)
        out.timing["worker_total"] = out.timing.get("total", 0.0)
        out.timing["total"] = time.perf_counter() - t0
        return out

    # -- public ----------------------------------------------------------------------------------

    def search(self, user, candidates, candidate_ids=None, batch_index: int = 0, *,
               memory: ErrorMemory | None = None) -> LastResult:
        """Serve a batch on the actors. ``memory``: the compensated judge's current memory (a
        snapshot goes to the actors; required when the search was built with one)."""
        return self._collect(*self._submit(user, candidates, candidate_ids, batch_index, memory))

    def search_many(self, requests: Iterable) -> Iterator[LastResult]:
        """Pipelined results of ``(user, candidates, candidate_ids[, batch_index])`` requests,
        in order, with at most ``max_in_flight`` chunk tasks outstanding."""
        import ray

        pending: deque = deque()
        for request in requests:
            pending.append(self._submit(*unpack_request(request)))
            while pending:
                refs = pending[0][0]
                done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                if len(done) < len(refs):
                    break
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    @property
    def labels(self) -> tuple[str, ...]:
        return self._shadow.labels

    def close(self) -> None:
        """Kill the actors (and shut Ray down if this backend started it). Idempotent."""
        import ray

        actors, self._actors = self._actors, []
        self._inflight.clear()
        if ray.is_initialized():
            for a in actors:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # already dead
                    pass
            if self._owns_ray:
                ray.shutdown()
        self._owns_ray = False

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
