"""Clicks joined to the slates they answer, released once every click can have been reported.

With ``click_delay = 0`` a served batch's clicks come back on the same step. With a delay (the
``delayed-feedback`` scenario, or any world with ``click_delay > 0``) a step's ``clicks`` are all
zeros and the clicks arrive later, one by one, in ``Feedback.click_reports``. An agent that
trained on ``feedback.clicks`` as they come would learn "nobody clicks"; one that must wait for
labels (retraining, an error memory, a replay buffer) holds each served batch here until the
world's report delay has passed, then learns from it with its real clicks. That waiting is the
cost of labels that LAST's premise is about, so it is paid honestly rather than skipped.

The delay is a property of the serving pipeline, which a recommender knows: it is read from the
world config the agent was built for (``AgentContext.world.click_delay``).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .pretrained import model_inputs


class LabelJoin:
    """Holds served batches (with an agent's own payload) until their clicks are all in.

    ``add(feedback, payload)`` records the batch just served, applies the clicks reported now
    to the batches they belong to (matched by request id and slate position), and returns
    ``[(payload, clicks), ...]`` for every batch whose last request is at least ``delay`` ticks
    old, oldest first; ``clicks`` is (B, K) float32. With ``delay = 0`` that is the batch just
    served, with its own clicks.
    """

    def __init__(self, delay: int):
        if isinstance(delay, bool) or int(delay) != delay or delay < 0:
            raise ValueError(f"click delay={delay!r} must be an integer >= 0 ticks")
        self.delay = int(delay)
        self._pending: deque[tuple[np.ndarray, dict, np.ndarray]] = deque()

    def add(self, feedback, payload: dict) -> list[tuple[dict, np.ndarray]]:
        ids = np.asarray(feedback.request_id, np.int64)
        reports = feedback.click_reports
        clicks = np.zeros(np.shape(feedback.slates), np.float32)
        if reports is None:  # feedback built without reports (a hand-made batch): clicks are now
            clicks[:] = np.asarray(feedback.clicks, np.float32)
        self._pending.append((ids, payload, clicks))
        if reports is not None and len(reports):
            self._apply(np.asarray(reports.request_id, np.int64),
                        np.asarray(reports.position, np.int64))
        newest = int(ids.max())
        ready = []
        while self._pending and int(self._pending[0][0].max()) + self.delay <= newest:
            batch_ids, body, labels = self._pending.popleft()
            ready.append((body, labels))
        return ready

    def _apply(self, request_id: np.ndarray, position: np.ndarray) -> None:
        for ids, _, clicks in self._pending:
            order = np.argsort(ids, kind="stable")
            at = np.searchsorted(ids, request_id, sorter=order)
            at = np.minimum(at, ids.size - 1)
            hit = ids[order[at]] == request_id
            clicks[order[at[hit]], position[hit]] = 1.0  # reports for other batches: no hit

    @property
    def waiting(self) -> int:
        """Requests served whose clicks are not all in yet."""
        return sum(int(ids.size) for ids, _, _ in self._pending)

    def state_dict(self) -> dict:
        return {"delay": self.delay,
                "pending": [(ids.copy(), dict(body), clicks.copy())
                            for ids, body, clicks in self._pending]}

    def load_state_dict(self, state: dict) -> None:
        self.delay = int(state["delay"])
        self._pending = deque((np.asarray(ids), dict(body), np.asarray(clicks))
                              for ids, body, clicks in state["pending"])


class FeedbackBuffer:
    """A period's labelled feedback: each served batch's model inputs, slates and clicks.

    ``add(feedback)`` holds the batch in a :class:`LabelJoin` and returns the batches whose
    clicks are now complete (dicts of ``user``, ``candidates``, ``candidate_ids``, ``slates``,
    ``clicks``, ``user_id``); with ``keep`` they are also kept until :meth:`take` concatenates
    and clears them (the data of one retraining period).
    """

    def __init__(self, delay: int, keep: bool = True, owner: str = "agent"):
        self.labels = LabelJoin(delay)
        self.keep = keep
        self.owner = owner
        self._ready: list[dict[str, np.ndarray]] = []

    def add(self, feedback) -> list[dict[str, np.ndarray]]:
        if feedback.obs is None:
            raise ValueError(f"{self.owner} needs Feedback.obs (the served observation batch)")
        payload = {**model_inputs(feedback.obs),
                   "slates": np.asarray(feedback.slates, np.int64),
                   "user_id": np.asarray(feedback.obs["user_id"], np.int64)}
        done = []
        for body, clicks in self.labels.add(feedback, payload):
            body["clicks"] = clicks
            done.append(body)
        if self.keep:
            self._ready.extend(done)
        return done

    def take(self) -> dict[str, np.ndarray] | None:
        """The labelled batches since the last call, concatenated (None if there are none)."""
        if not self._ready:
            return None
        data = {k: np.concatenate([b[k] for b in self._ready]) for k in self._ready[0]}
        self._ready.clear()
        return data

    def state_dict(self) -> dict:
        return {"labels": self.labels.state_dict(), "ready": [dict(b) for b in self._ready]}

    def load_state_dict(self, state: dict) -> None:
        self.labels.load_state_dict(state["labels"])
        self._ready = [dict(b) for b in state["ready"]]
