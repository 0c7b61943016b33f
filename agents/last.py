"""``last``, ``reloop2`` and ``last+reloop2``: adapting at serving time, not by retraining.

All three keep the pretrained generator frozen and spend compute per request:

- ``last`` (LAST): for every request, perturb the generator along the direction the evaluator
  likes (offsets of its activations, see :mod:`driftrank.adapt.last`), generate a slate under
  each offset plus a few unperturbed re-samples, and serve the one the evaluator scores best.
  The offsets are thrown away after the request; the deployed generator never changes.
- ``reloop2`` (ReLoop2): the candidates are the generator's greedy slate and a few sampled
  slates, judged by a :class:`~driftrank.adapt.compensated.CompensatedEvaluator` whose error
  memory is written from the feedback stream, so the judge tracks drift the moment labels land.
- ``last+reloop2`` (the flagship): LAST's perturbation search, direction and selection both
  judged by the compensated evaluator.

``refresh_period`` (all three): every that many requests, fine-tune the evaluator on the
feedback collected since the last refresh while the generator stays frozen (LAST's premise: a
fresh judge steers a stale generator without retraining it); the error memory is reset at each
refresh, since its errors were the old evaluator's.

Selection only ever uses the (compensated) evaluator: never labels, never the world's truth.
"""

from __future__ import annotations

import numpy as np

from .. import evaluator as ev
from ..adapt.compensated import CompensatedEvaluator
from ..adapt.last import DEFAULT_STEPS, LastSearch
from .base import AgentContext
from .labels import FeedbackBuffer
from .pretrained import model_inputs
from .registry import register_agent
from .static import PretrainedAgent


class SearchAgent(PretrainedAgent):
    """Serves the best of a per-request candidate search; optionally feeds an error memory and
    refreshes the evaluator every ``refresh_period`` requests."""

    def __init__(
        self,
        context: AgentContext,
        *,
        steps=DEFAULT_STEPS,
        resamples: int = 4,
        mode: str = "activation",
        memory: dict | None = None,
        backend: str = "local",
        ray_actors: int = 2,
        refresh_period: int | None = None,
        refresh_lr: float = 1e-3,
        pretrain_config: dict | None = None,
    ):
        super().__init__(context, pretrain_config)
        if backend not in ("local", "ray"):
            raise ValueError(f"{self.name}: backend={backend!r}; choose 'local' or 'ray'")
        if refresh_period is not None and (isinstance(refresh_period, bool) or
                                           int(refresh_period) != refresh_period or
                                           refresh_period < 1):
            raise ValueError(f"{self.name}: refresh_period={refresh_period!r} must be a "
                             f"positive number of requests or None (never refresh)")
        self.compensated = (CompensatedEvaluator(self.evaluator, **memory)
                            if memory is not None else None)
        self.search = LastSearch(
            self.generator, self.evaluator, mode=mode, steps=tuple(steps),
            resamples=int(resamples), judge=self.compensated, seed=int(context.seed))
        self.backend_name = backend
        self._backend = None
        self._ray_actors = ray_actors
        self.refresh_lr = float(refresh_lr)
        if refresh_period is not None:
            self.period = int(refresh_period)  # the runner calls on_period every period requests
        self.refreshes = 0
        # labelled batches feed the memory; they are also kept for the evaluator's refresh
        self.feedback = FeedbackBuffer(context.world.click_delay,
                                       keep=refresh_period is not None, owner=self.name)
        self.batches = 0
        self.last_result = None

    def _run(self, x: dict, batch_index: int):
        if self.backend_name == "local":
            return self.search.search(x["user"], x["candidates"], x["candidate_ids"],
                                      batch_index=batch_index)
        if self._backend is None:
            from ..adapt.ray_backend import RayBackend

            self._backend = RayBackend.from_search(self.search, n_actors=self._ray_actors)
        memory = None if self.compensated is None else self.compensated.memory
        return self._backend.search(x["user"], x["candidates"], x["candidate_ids"],
                                    batch_index=batch_index, memory=memory)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = model_inputs(obs)
        result = self._run(x, self.batches)
        self.batches += 1
        self.last_result = result
        return np.asarray(result.slates, dtype=np.int64)

    def observe(self, feedback) -> None:
        if self.compensated is None and getattr(self, "period", None) is None:
            return
        for batch in self.feedback.add(feedback):  # written when its clicks are in
            if self.compensated is not None:
                slates = batch["slates"]
                rows = np.arange(slates.shape[0])[:, None]
                self.compensated.observe(batch["user"], batch["candidates"][rows, slates],
                                         batch["candidate_ids"][rows, slates],
                                         batch["clicks"].astype(np.float64))

    def on_period(self, step: int) -> None:
        """Refresh the evaluator on the buffered feedback; the generator stays frozen."""
        data = self.feedback.take() if getattr(self, "period", None) is not None else None
        if data is None:
            return
        ev.train_evaluator(self.evaluator, data, epochs=1, lr=self.refresh_lr,
                           seed=int(self.rng.integers(2**31)))
        self.evaluator.eval()
        if self.compensated is not None:
            self.compensated.set_evaluator(self.evaluator)
        if self._backend is not None:  # the actors hold the old evaluator
            self._backend.close()
            self._backend = None
        self.refreshes += 1

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "batches": self.batches, "refreshes": self.refreshes,
                 "feedback": self.feedback.state_dict()}
        if self.compensated is not None:
            state["memory"] = self.compensated.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.batches = state["batches"]
        self.refreshes = state["refreshes"]
        self.feedback.load_state_dict(state["feedback"])
        if self.compensated is not None:
            self.compensated.load_state_dict(state["memory"])
        if self._backend is not None:  # the actors may hold other weights
            self._backend.close()
            self._backend = None

    def close(self) -> None:
        """Stop the Ray actors, if any (idempotent; the runner calls it in a finally)."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()


DEFAULT_MEMORY = dict(n_bits=10, n_arrays=32, lam=0.5, tau=0.1, gamma=1.0, id_weight=2.0)


@register_agent("last", "LAST: per-request generator perturbation judged by the evaluator")
class LastAgent(SearchAgent):
    name = "last"

    def __init__(self, context: AgentContext, steps=DEFAULT_STEPS, resamples: int = 4,
                 mode: str = "activation", backend: str = "local", ray_actors: int = 2,
                 refresh_period: int | None = None, refresh_lr: float = 1e-3,
                 pretrain_config: dict | None = None):
        super().__init__(context, steps=steps, resamples=resamples, mode=mode, memory=None,
                         backend=backend, ray_actors=ray_actors, refresh_period=refresh_period,
                         refresh_lr=refresh_lr, pretrain_config=pretrain_config)


@register_agent("reloop2", "ReLoop2: greedy + sampled slates judged by an error-compensated "
                           "evaluator")
class ReLoop2Agent(SearchAgent):
    name = "reloop2"

    def __init__(self, context: AgentContext, resamples: int = 8, memory: dict | None = None,
                 backend: str = "local", ray_actors: int = 2,
                 refresh_period: int | None = None, refresh_lr: float = 1e-3,
                 pretrain_config: dict | None = None):
        super().__init__(context, steps=(), resamples=resamples, mode="activation",
                         memory={**DEFAULT_MEMORY, **(memory or {})}, backend=backend,
                         ray_actors=ray_actors, refresh_period=refresh_period,
                         refresh_lr=refresh_lr, pretrain_config=pretrain_config)


@register_agent("last+reloop2", "flagship: LAST search judged by the ReLoop2-compensated "
                                "evaluator")
class LastReLoop2Agent(SearchAgent):
    name = "last+reloop2"

    def __init__(self, context: AgentContext, steps=DEFAULT_STEPS, resamples: int = 4,
                 mode: str = "activation", memory: dict | None = None,
                 backend: str = "local", ray_actors: int = 2,
                 refresh_period: int | None = None, refresh_lr: float = 1e-3,
                 pretrain_config: dict | None = None):
        super().__init__(context, steps=steps, resamples=resamples, mode=mode,
                         memory={**DEFAULT_MEMORY, **(memory or {})}, backend=backend,
                         ray_actors=ray_actors, refresh_period=refresh_period,
                         refresh_lr=refresh_lr, pretrain_config=pretrain_config)

