"""Value types shared by the world, the agents and the runner.

They live in ``envs`` because the environment defines them; every layer above may import
them. Observations stay plain ``dict`` of numpy arrays (what Gymnasium returns), so an agent
written in any framework can read them without importing driftrank at all.

Observation batch (``VectorRerankEnv.step``/``reset``), leading dimension B = requests:

=================  ==================  =====================================================
key                shape, dtype        meaning
=================  ==================  =====================================================
``user``           (B, Fu) float32     behaviour profile (decayed means of clicked items' observed
                                       vectors per half-life), topic histogram, counters
``candidates``     (B, N, Fi) float32  per-candidate features (topic one-hot, noisy latent,
                                       popularity statistics, freshness)
``candidate_ids``  (B, N) int64        catalog ids of the candidates (new ids appear on churn)
``context``        (B, C) float32      time of day (sin, cos), user activity, visit recency
``user_id``        (B,) int64          id of the requesting user
=================  ==================  =====================================================

A single-request ``RerankEnv`` returns the same keys without the leading B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Conversions:
    """Conversions that *land* at this step (they were caused by clicks some steps ago).

    All arrays have one entry per landing conversion. ``request_id`` and ``position`` point back
    at the served request and the slate slot that was clicked; ``row`` is the batch row the
    request was served in (a conversion lands in the same row, as in a vector of sub-envs).
    """

    request_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    user_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    item_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    position: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    served_step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    delay: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.request_id.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Conversions):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in FIELDS)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in FIELDS}


FIELDS = ("request_id", "row", "user_id", "item_id", "position", "served_step", "delay")


class ClickReports(Conversions):
    """Clicks *reported* at this step (same fields as :class:`Conversions`).

    With ``click_delay = 0`` they are exactly the clicks on this step's slates; with a delay
    they belong to requests served earlier and arrive once, ``delay`` ticks after the click.
    """


@dataclass
class Feedback:
    """What an agent is told after serving a batch: labels only, never the world's truth.

    ``slates`` are the candidate indices the agent served (B, K); ``clicks`` (B, K) are 0/1 with
    0 for empty slots (a repeated index leaves its slot empty); ``conversions`` are the delayed
    purchases landing now, possibly for requests served many steps ago. ``obs`` is the
    observation batch the slates answered, so an agent need not keep its own copy.
    """

    request_id: np.ndarray
    slates: np.ndarray
    clicks: np.ndarray
    conversions: Conversions
    reward: np.ndarray
    obs: dict | None = None  # the observation batch these slates were served for
    click_reports: ClickReports | None = None  # clicks reported now (delayed clicks included)

    @classmethod
    def from_step(cls, info: dict, slates, reward, obs: dict | None = None) -> Feedback:
        """The feedback of one env step, labels only (``info["truth"]`` is never copied).

        With ``click_delay > 0`` ``clicks`` is all zeros (nothing on these slates is reported
        yet) and the clicks that land now, on earlier slates, are in ``click_reports``.
        """
        return cls(request_id=info["request_id"], slates=np.asarray(slates),
                   clicks=info["clicks"], conversions=info["conversions"], reward=reward,
                   obs=obs, click_reports=info.get("click_reports"))
