"""``drn``: DRN, a deep Q-network re-ranker with dueling-bandit exploration.

After Zheng et al., "DRN: A Deep Reinforcement Learning Framework for News Recommendation"
(WWW 2018). Read top to bottom: the pure pieces first (each unit-tested on its own), then the
network, the user-activeness table, the replay memory, and finally the agent that wires them.

The pieces, and how they map onto the paper
-------------------------------------------

**MDP.** One transition per *shown item*: the state s is the request (user features +
context), the action a is the item (its features, scored among the request's N candidates), the
next state s' is the *same user's next request* (its user/context features and its candidate
set). A request's K impressions wait in a per-user pending slot until the user comes back; if
the user does not return within ``next_state_horizon`` ticks (default: ``period``) they are
closed as terminal (y = r).

**Reward** of a shown item (paper §4.3, r_total = r_click + beta * r_active)::

    r = click + beta * A_u(t_close)

``A_u`` is the user's *activeness*, a survival-style score per ``obs["user_id"]`` in [0, 1]
(the paper's S(t) with constant hazard): between visits it decays, on each return it rises::

    first visit:     A = activeness_init                          (paper S_0 = 0.5)
    between visits:  A(t) = A(t_last) * exp(-(t - t_last) / tau)  (constant hazard 1/tau)
    on a return:     A <- min(1, A(t) + activeness_boost)         (paper S_a = 0.32)

Time t is the tick (= ``Feedback.request_id``; one tick per request). ``tau`` defaults to
``n_users`` ticks, about a user's mean gap between visits. ``t_close`` is when the
transition's next state becomes known: the user's next visit (A taken *after* the boost, so
items after which the user comes back soon earn more), or, for a terminal transition,
``t + horizon`` with no return (A decayed over the horizon). Delayed conversions are not
part of DRN's reward and are ignored.

**Network** (paper §4.2, Fig. 4): a dueling double DQN. A state trunk reads user + context
features; the value head V(s) reads the trunk; the advantage head A(s, a) reads the trunk, the
item features and the paper's *user-news* cross features (the user's noisy taste projection
times the item's noisy latent projection, and the user's recent-click share of the item's
topic, both read from the observation layout documented in ``envs.config``). Per candidate::

    Q(s, a) = V(s) + A(s, a) - mean_{a' in candidates(s)} A(s, a')

The slate is the top-K candidates by Q.

**Double-DQN target** (paper Eq. 3): the online net W chooses, the target net W' values::

    y = r + gamma * Q_W'(s', argmax_{a' in candidates(s')} Q_W(s', a'))     (y = r if terminal)

**Minor update: dueling bandit gradient descent** (paper §4.4, Fig. 6), once per served batch
with ``exploration="dbgd"``:

1. explorer weights  W~ = W + alpha * U(-1, 1) * W   (elementwise, every parameter);
2. both networks rank all candidates; the served slate *probabilistically interleaves* the two
   rankings (Hofmann et al. 2011): each ranking becomes a distribution with
   P(item at rank r) proportional to 1 / r^tau_pi (tau_pi = 3); for each slot a ranking is
   picked uniformly at random and an unused item is sampled from its distribution
   (renormalised over unused items); the ranking that contributed each slot is remembered;
3. clicks are credited to the contributing ranking, summed over the batch; if the explorer
   gets strictly more, W <- W + eta * (W~ - W). The target net is not touched.

``exploration="eps_greedy"`` is the paper's ablation (each slot is a uniformly random unused
candidate with probability ``epsilon``, else the best unused by Q); ``"greedy"`` serves top-K Q.

**Major update** every ``period`` requests (paper §4.1): expire pending transitions older than
the horizon, take ``gradient_steps`` Adam steps on minibatches of ``batch_size`` impressions
sampled uniformly from the replay memory (Huber TD loss), and copy W into W' every
``target_sync`` major updates. The runner calls ``on_period`` every ``period`` requests (the
one period mechanism of :mod:`driftrank.agents.base`); a major update is what it does.

**Replay memory**: impressions, ``replay_size`` of them (a ring). To stay small it stores the
candidate *ids* of s and s' and looks item features up in an agent-side cache of the latest
features observed for each item id (popularity and freshness features therefore come from the
latest observation of the item, not from the exact moment of the impression).

Paper defaults: gamma 0.4, beta 0.05, alpha 0.1, eta 0.05, S_0 0.5, S_a 0.32, tau_pi 3.
Choices not fixed by the paper (network sizes, period, replay size, optimiser) are
arguments. ``warm_start_requests > 0`` first learns from offline logs of the behaviour policy
(``envs.logs.generate_logs``), as DRN is deployed after offline training.

Ticks that go backwards (an env reset, or the end of the warm start) close every pending
transition as terminal and restart the activeness table (:meth:`DRNAgent.new_episode`).

The agent reads observations and feedback only, never the world's truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..envs.logs import generate_logs
from ..envs.types import Feedback
from .base import AgentContext, BaseAgent, periods_between
from .labels import LabelJoin
from .registry import register_agent

EXPLORATIONS = ("dbgd", "eps_greedy", "greedy")


# ============================================================================ pure pieces
def dueling_combine(value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Q = V + A - mean over candidates of A; ``value`` (B,), ``advantage`` (B, N)."""
    return value[:, None] + advantage - advantage.mean(dim=1, keepdim=True)


def double_dqn_target(reward: torch.Tensor, done: torch.Tensor, q_next_online: torch.Tensor,
                      q_next_target: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * Q_target(s', argmax_a' Q_online(s', a')), and y = r where ``done``.

    ``reward``, ``done`` (B,); ``q_next_*`` (B, N) over the next state's candidates.
    """
    choice = q_next_online.argmax(dim=1, keepdim=True)
    value = q_next_target.gather(1, choice).squeeze(1)
    return reward + gamma * (1.0 - done.to(reward.dtype)) * value


def probabilistic_interleave(ranking_a: np.ndarray, ranking_b: np.ndarray, k: int,
                             rng: np.random.Generator, tau: float = 3.0
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilistic interleaving (Hofmann et al. 2011) of two rankings, row by row.

    ``ranking_a``, ``ranking_b``: (B, N) permutations of the N candidate indices, best first.
    Each ranking is a distribution over items, P(item at rank r) proportional to 1 / r^tau
    (r = 1, 2, ...). For each of the ``k`` slots a ranking is chosen uniformly at random and
    an unused item is drawn from its distribution renormalised over the unused items.

    Returns ``(slate, contributor)``: (B, k) int64 distinct candidate indices and (B, k) int8,
    0 where ``ranking_a`` contributed the slot, 1 where ``ranking_b`` did.
    """
    ranking_a, ranking_b = np.atleast_2d(ranking_a), np.atleast_2d(ranking_b)
    if ranking_a.shape != ranking_b.shape:
        raise ValueError(f"rankings differ in shape: {ranking_a.shape} vs {ranking_b.shape}")
    b, n = ranking_a.shape
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, {n}]")
    rank_weight = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** tau
    weights = np.zeros((2, b, n))
    rows = np.arange(b)[:, None]
    weights[0, rows, ranking_a] = rank_weight  # weight of each candidate under each ranking
    weights[1, rows, ranking_b] = rank_weight
    unused = np.ones((b, n), bool)
    slate = np.empty((b, k), np.int64)
    contributor = rng.integers(0, 2, size=(b, k)).astype(np.int8)
    u = rng.random((b, k))
    for slot in range(k):
        p = weights[contributor[:, slot], np.arange(b)] * unused
        cdf = np.cumsum(p, axis=1)
        pick = (cdf < u[:, slot:slot + 1] * cdf[:, -1:]).sum(axis=1)
        pick = np.minimum(pick, n - 1)
        bad = ~unused[np.arange(b), pick]  # float round-off at the very end of the cdf
        pick[bad] = p[bad].argmax(axis=1)
        slate[:, slot] = pick
        unused[np.arange(b), pick] = False
    return slate, contributor


def epsilon_greedy_slates(q: np.ndarray, k: int, epsilon: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Per slot: a uniformly random unused candidate with probability ``epsilon``, else the
    unused candidate with the highest Q. (B, k) int64."""
    b, n = q.shape
    rows = np.arange(b)
    used = np.zeros((b, n), bool)
    slate = np.empty((b, k), np.int64)
    explore = rng.random((b, k)) < epsilon
    keys = rng.random((b, k, n))
    for slot in range(k):
        best = np.where(used, -np.inf, q).argmax(axis=1)
        rand = np.where(used, -1.0, keys[:, slot]).argmax(axis=1)
        slate[:, slot] = np.where(explore[:, slot], rand, best)
        used[rows, slate[:, slot]] = True
    return slate


def explore_weights(weights: list[torch.Tensor], alpha: float,
                    rng: np.random.Generator) -> list[torch.Tensor]:
    """The explorer W~ = W + alpha * U(-1, 1) * W, elementwise for every parameter tensor."""
    return [w + alpha * torch.from_numpy(rng.uniform(-1.0, 1.0, tuple(w.shape))).to(w.dtype) * w
            for w in weights]


def dbgd_update(weights: list[torch.Tensor], explorer: list[torch.Tensor],
                eta: float) -> list[torch.Tensor]:
    """The dueling bandit step taken when the explorer wins: W + eta * (W~ - W)."""
    return [w + eta * (e - w) for w, e in zip(weights, explorer, strict=True)]


def activeness_after_visit(previous: np.ndarray, gap: np.ndarray, tau: float,
                           boost: float) -> np.ndarray:
    """Survival-style activeness on a return after ``gap`` ticks: min(1, A e^(-gap/tau) + boost)."""
    return np.minimum(1.0, previous * np.exp(-gap / tau) + boost)


# ============================================================================ the network
class DuelingQNet(nn.Module):
    """Scores every candidate of a request: Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')."""

    def __init__(self, user_dim: int, context_dim: int, item_dim: int, obs_dim: int,
                 n_topics: int, hidden: int = 64):
        super().__init__()
        self.obs_dim, self.n_topics = obs_dim, n_topics
        self.state = nn.Sequential(nn.Linear(user_dim + context_dim, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU())
        self.value = nn.Linear(hidden, 1)
        # first advantage layer = Linear(cat[trunk, item, cross]), split so the trunk part is
        # computed once per request instead of once per candidate
        self.advantage_state = nn.Linear(hidden, hidden)
        self.advantage_item = nn.Linear(item_dim + obs_dim + 1, hidden, bias=False)
        self.advantage_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 1))

    def cross_features(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """User-item features (B, N, obs_dim + 1): taste x item latent, history share of topic."""
        d, t = self.obs_dim, self.n_topics
        taste, history = user[:, :d], user[:, d:d + t]
        topic, latent = items[..., :t], items[..., t:t + d]
        share = (history[:, None, :] * topic).sum(dim=-1, keepdim=True)
        return torch.cat([taste[:, None, :] * latent, share], dim=-1)

    def forward(self, user: torch.Tensor, context: torch.Tensor, items: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``user`` (B, Fu), ``context`` (B, C), ``items`` (B, N, Fi) -> Q (B, N), V (B,),
        A (B, N)."""
        h = self.state(torch.cat([user, context], dim=-1))
        value = self.value(h).squeeze(-1)
        item_part = self.advantage_item(torch.cat([items, self.cross_features(user, items)], -1))
        advantage = self.advantage_out(self.advantage_state(h)[:, None, :] + item_part)
        advantage = advantage.squeeze(-1)
        return dueling_combine(value, advantage), value, advantage


# ============================================================================ activeness
def _grow(array: np.ndarray, rows: int, fill=0) -> np.ndarray:
    """``array`` with at least ``rows`` rows (new rows = ``fill``); doubles to amortise."""
    if rows <= array.shape[0]:
        return array
    out = np.full((max(rows, 2 * array.shape[0]),) + array.shape[1:], fill, array.dtype)
    out[: array.shape[0]] = array
    return out


class ActivenessTable:
    """Per-user survival-style activeness in [0, 1] (see the module docstring)."""

    def __init__(self, n_users: int, tau: float, boost: float = 0.32, init: float = 0.5):
        self.tau, self.boost, self.init = float(tau), float(boost), float(init)
        self.value = np.zeros(n_users, np.float64)
        self.last = np.full(n_users, -1, np.int64)  # tick of the last visit, -1 = never seen

    def visit(self, users: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        """Record visits of *distinct* ``users`` at ``ticks``; their activeness after it."""
        self.value = _grow(self.value, users.max() + 1, 0.0)
        self.last = _grow(self.last, users.max() + 1, -1)
        last = self.last[users]
        seen = last >= 0
        gap = np.where(seen, ticks - last, 0).astype(np.float64)
        after = activeness_after_visit(self.value[users], gap, self.tau, self.boost)
        after = np.where(seen, after, self.init)
        self.value[users] = after
        self.last[users] = ticks
        return after

    def peek(self, users: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        """Activeness at ``ticks`` if the users do not visit (decayed since the last visit)."""
        gap = np.maximum(ticks - self.last[users], 0).astype(np.float64)
        return self.value[users] * np.exp(-gap / self.tau)

    def state_dict(self) -> dict:
        return {"value": self.value.copy(), "last": self.last.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.last = state["value"].copy(), state["last"].copy()


# ============================================================================ memory
class ItemFeatureCache:
    """Latest observed feature vector of every item id (ids grow with catalog churn)."""

    def __init__(self, n_items: int, item_dim: int):
        self.table = np.zeros((n_items, item_dim), np.float32)

    def update(self, ids: np.ndarray, features: np.ndarray) -> None:
        self.table = _grow(self.table, int(ids.max()) + 1)
        self.table[ids.reshape(-1)] = features.reshape(-1, self.table.shape[1])

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        return self.table[ids]


class ImpressionReplay:
    """Ring buffer of impression transitions (s, a, r, s', done), candidates stored as ids."""

    def __init__(self, capacity: int, user_dim: int, context_dim: int, n_candidates: int):
        c = capacity
        self.capacity, self.size, self.ptr = c, 0, 0
        self.data = {
            "user": np.zeros((c, user_dim), np.float32),
            "context": np.zeros((c, context_dim), np.float32),
            "ids": np.zeros((c, n_candidates), np.int64),
            "action": np.zeros(c, np.int64),  # index of the shown item among the candidates
            "reward": np.zeros(c, np.float32),
            "done": np.zeros(c, bool),
            "next_user": np.zeros((c, user_dim), np.float32),
            "next_context": np.zeros((c, context_dim), np.float32),
            "next_ids": np.zeros((c, n_candidates), np.int64),
        }

    def push(self, **columns: np.ndarray) -> None:
        m = len(columns["reward"])
        if m == 0:
            return
        keep = slice(max(0, m - self.capacity), m)
        idx = (self.ptr + np.arange(m)[keep] - keep.start) % self.capacity
        for key, array in self.data.items():
            array[idx] = columns[key][keep]
        self.ptr = int((idx[-1] + 1) % self.capacity)
        self.size = min(self.capacity, self.size + idx.size)

    def sample(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {key: array[idx] for key, array in self.data.items()}

    def state_dict(self) -> dict:
        return {"size": self.size, "ptr": self.ptr,
                **{key: array[: self.size].copy() for key, array in self.data.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.ptr = int(state["size"]), int(state["ptr"])
        for key, array in self.data.items():
            array[: self.size] = state[key]


def _shown_mask(slates: np.ndarray) -> np.ndarray:
    """True where a slot shows an item (the first occurrence of its index in the slate)."""
    k = slates.shape[1]
    return np.stack([~(slates[:, :j] == slates[:, j:j + 1]).any(axis=1) for j in range(k)], 1)


def _occurrence_rounds(users: np.ndarray) -> list[np.ndarray]:
    """Split batch rows into rounds in which every user appears once, keeping row order
    (rows are in tick order), so a user seen twice in one batch is handled in sequence."""
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(users.size), 0))
    occurrence = np.empty(users.size, np.int64)
    occurrence[order] = np.arange(users.size) - group_start
    return [np.flatnonzero(occurrence == r) for r in range(int(occurrence.max()) + 1)]


# ============================================================================ the agent
@register_agent("drn", "DRN: dueling double DQN, click + activeness reward, dueling-bandit "
                       "exploration, periodic replay (Zheng et al. 2018)")
class DRNAgent(BaseAgent):
    """DRN (see the module docstring). Arguments, besides the paper's ``gamma`` (discount),
    ``beta`` (activeness weight), ``alpha`` (explorer perturbation) and ``eta`` (dueling-bandit
    step):

    - ``exploration``: ``"dbgd"`` (paper), ``"eps_greedy"`` (ablation, with ``epsilon``) or
      ``"greedy"`` (top-K Q, no exploration); ``interleave_tau``: rank exponent of the
      probabilistic interleaving (3).
    - ``period``: requests between major updates; each takes ``gradient_steps`` Adam steps
      (learning rate ``lr``) on minibatches of ``batch_size`` impressions from a replay of
      ``replay_size`` impressions; the target net is synced every ``target_sync`` major updates.
    - ``hidden``: width of the network; ``next_state_horizon``: ticks a request waits for its
      user's return before it is closed as terminal (default ``period``).
    - ``activeness_tau`` (default ``n_users`` ticks), ``activeness_boost`` (0.32),
      ``activeness_init`` (0.5): the survival-style activeness.
    - ``warm_start_requests``: learn from this many offline logged requests before serving.
    """

    name = "drn"
    config_ranges = {
        "gamma": "[0, 1)", "beta": ">= 0", "alpha": ">= 0", "eta": "(0, 1]", "epsilon": "[0, 1]",
        "interleave_tau": "> 0", "period": ">= 1", "replay_size": ">= 1", "batch_size": ">= 1",
        "gradient_steps": ">= 0", "lr": "> 0", "hidden": ">= 1", "target_sync": ">= 1",
        "next_state_horizon": ">= 1", "activeness_tau": "> 0", "activeness_boost": ">= 0",
        "activeness_init": "[0, 1]", "warm_start_requests": ">= 0",
    }

    def __init__(
        self,
        context: AgentContext,
        *,
        gamma: float = 0.4,
        beta: float = 0.05,
        alpha: float = 0.1,
        eta: float = 0.05,
        exploration: str = "dbgd",
        epsilon: float = 0.1,
        interleave_tau: float = 3.0,
        period: int = 2000,
        replay_size: int = 50_000,
        batch_size: int = 256,
        gradient_steps: int = 50,
        lr: float = 1e-3,
        hidden: int = 64,
        target_sync: int = 1,
        next_state_horizon: int | None = None,
        activeness_tau: float | None = None,
        activeness_boost: float = 0.32,
        activeness_init: float = 0.5,
        warm_start_requests: int = 0,
    ):
        super().__init__(context)
        if exploration not in EXPLORATIONS:
            raise ValueError(f"exploration={exploration!r}; choose one of {EXPLORATIONS}")
        for key, value in (("period", period), ("replay_size", replay_size),
                           ("batch_size", batch_size), ("hidden", hidden),
                           ("target_sync", target_sync)):
            if int(value) < 1:
                raise ValueError(f"{key}={value} must be an integer >= 1")
        if gradient_steps < 0 or warm_start_requests < 0:
            raise ValueError("gradient_steps and warm_start_requests must be >= 0")
        w = context.world
        self.gamma, self.beta, self.alpha, self.eta = gamma, beta, alpha, eta
        self.exploration, self.epsilon, self.interleave_tau = exploration, epsilon, interleave_tau
        self.period, self.batch_size, self.gradient_steps = period, batch_size, gradient_steps
        self.target_sync = target_sync
        self.horizon = int(next_state_horizon if next_state_horizon is not None else period)
        self.k = context.slate_size

        # networks: online W and target W' (same initial weights, seeded without touching
        # torch's global generator)
        dims = (w.user_feature_dim, w.context_dim, w.item_feature_dim, w.obs_dim, w.n_topics)
        with torch.random.fork_rng(devices=[]):
            seed = np.random.SeedSequence([context.seed, 0xD12]).generate_state(1)[0]
            torch.manual_seed(int(seed))
            self.online = DuelingQNet(*dims, hidden)
            self.target = DuelingQNet(*dims, hidden)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=lr)

        # memory: activeness, each user's pending (not yet closed) request, replay, item cache
        tau = activeness_tau if activeness_tau is not None else float(w.n_users)
        self.activeness = ActivenessTable(w.n_users, tau, activeness_boost, activeness_init)
        u, n, k = w.n_users, w.n_candidates, self.k
        self.pending = {
            "tick": np.full(u, -1, np.int64),  # -1 = nothing pending for this user
            "user": np.zeros((u, w.user_feature_dim), np.float32),
            "context": np.zeros((u, w.context_dim), np.float32),
            "ids": np.zeros((u, n), np.int64),
            "slate": np.zeros((u, k), np.int64),
            "clicks": np.zeros((u, k), np.float32),
            "shown": np.zeros((u, k), bool),
        }
        self.replay = ImpressionReplay(replay_size, w.user_feature_dim, w.context_dim, n)
        self.items = ItemFeatureCache(w.n_items, w.item_feature_dim)
        self.requests_seen = 0
        self.major_updates = 0
        self.minor_wins = 0
        self.now = -1  # latest tick observed
        self._served: dict | None = None  # what act() served, for the dueling-bandit step
        self.labels = LabelJoin(w.click_delay)  # served batches waiting for their clicks
        self._last_obs: dict | None = None

        if warm_start_requests:
            self.warm_start(warm_start_requests)

    # ------------------------------------------------------------------ acting
    def _tensors(self, obs: dict[str, np.ndarray]):
        return (torch.as_tensor(obs["user"], dtype=torch.float32),
                torch.as_tensor(obs["context"], dtype=torch.float32),
                torch.as_tensor(obs["candidates"], dtype=torch.float32))

    @torch.no_grad()
    def q_values(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Online-network Q of every candidate, (B, N)."""
        return self.online(*self._tensors(obs))[0].numpy()

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self._last_obs = obs  # used by observe() when the feedback carries no obs
        inputs = self._tensors(obs)
        q = self.online(*inputs)[0].numpy()
        if self.exploration == "greedy":
            slates = np.argsort(-q, axis=1, kind="stable")[:, : self.k].astype(np.int64)
        elif self.exploration == "eps_greedy":
            slates = epsilon_greedy_slates(q, self.k, self.epsilon, self.rng)
        else:  # dbgd: rank with W and with the explorer W~, interleave the two rankings
            names = [name for name, _ in self.online.named_parameters()]
            weights = [p.detach() for p in self.online.parameters()]
            explorer = explore_weights(weights, self.alpha, self.rng)
            q_explore = functional_call(self.online, dict(zip(names, explorer, strict=True)),
                                        inputs)[0].numpy()
            slates, contributor = probabilistic_interleave(
                np.argsort(-q, axis=1, kind="stable"),
                np.argsort(-q_explore, axis=1, kind="stable"),
                self.k, self.rng, self.interleave_tau)
            self._served = {"slates": slates.copy(), "contributor": contributor,
                            "explorer": explorer}
        return slates

    # ------------------------------------------------------------------ learning
    def observe(self, feedback: Feedback) -> None:
        obs = feedback.obs if feedback.obs is not None else self._last_obs
        if obs is None:
            raise ValueError("DRN needs feedback.obs (the observation the slates answered)")
        served, self._served = self._served, None
        batch = {"obs": obs, "slates": np.asarray(feedback.slates, np.int64),
                 "ticks": np.asarray(feedback.request_id, np.int64), "served": served}
        # a batch is learned from once its clicks are in (at once unless clicks come late)
        for body, clicks in self.labels.add(feedback, batch):
            if self.exploration == "dbgd":
                self.minor_update(body["slates"], clicks, body["served"])
            self.record(body["obs"], body["slates"], clicks, body["ticks"])
            self.requests_seen += body["slates"].shape[0]

    @torch.no_grad()
    def minor_update(self, slates: np.ndarray, clicks: np.ndarray, served: dict | None) -> bool:
        """Dueling bandit gradient descent on a batch act() served (``served``: how it was
        interleaved); True if W moved."""
        if served is None or not np.array_equal(served["slates"], slates):
            return False  # feedback for a batch this agent did not interleave
        explorer_clicks = clicks[served["contributor"] == 1].sum()
        online_clicks = clicks[served["contributor"] == 0].sum()
        if explorer_clicks <= online_clicks:
            return False
        params = list(self.online.parameters())
        for p, new in zip(params, dbgd_update([p.detach() for p in params], served["explorer"],
                                              self.eta), strict=True):
            p.copy_(new)
        self.minor_wins += 1
        return True

    def record(self, obs: dict[str, np.ndarray], slates: np.ndarray, clicks: np.ndarray,
               ticks: np.ndarray) -> None:
        """Activeness visits, close each returning user's pending transitions with this request
        as their next state, and make this request the user's pending one."""
        users = np.asarray(obs["user_id"], np.int64)
        if self.now >= 0 and ticks.min() <= self.now:
            self.new_episode()  # ticks went back: the env was reset, per-user time restarts
        self.items.update(np.asarray(obs["candidate_ids"]), np.asarray(obs["candidates"]))
        for key, array in self.pending.items():
            self.pending[key] = _grow(array, int(users.max()) + 1, -1 if key == "tick" else 0)
        shown = _shown_mask(slates)
        for rows in _occurrence_rounds(users):
            u = users[rows]
            active = self.activeness.visit(u, ticks[rows])
            self._close(u, active, done=False, next_state=(
                obs["user"][rows], obs["context"][rows], obs["candidate_ids"][rows]))
            p = self.pending
            p["tick"][u] = ticks[rows]
            p["user"][u], p["context"][u] = obs["user"][rows], obs["context"][rows]
            p["ids"][u], p["slate"][u] = obs["candidate_ids"][rows], slates[rows]
            p["clicks"][u], p["shown"][u] = clicks[rows], shown[rows]
        self.now = max(self.now, int(ticks.max()))

    def _close(self, users: np.ndarray, active: np.ndarray, done: bool, next_state=None) -> None:
        """Push the pending impressions of ``users`` to the replay with reward
        click + beta * ``active`` and the given next state (ignored if ``done``)."""
        p = self.pending
        has = p["tick"][users] >= 0
        if not has.any():
            return
        users, active = users[has], active[has]
        req, slot = np.nonzero(p["shown"][users])
        uu = users[req]
        if done:
            next_user = np.zeros_like(p["user"][uu])
            next_context = np.zeros_like(p["context"][uu])
            next_ids = np.zeros_like(p["ids"][uu])
        else:
            next_user, next_context, next_ids = (np.asarray(a)[has][req] for a in next_state)
        self.replay.push(
            user=p["user"][uu], context=p["context"][uu], ids=p["ids"][uu],
            action=p["slate"][uu, slot],
            reward=(p["clicks"][uu, slot] + self.beta * active[req]).astype(np.float32),
            done=np.full(uu.size, done), next_user=next_user, next_context=next_context,
            next_ids=next_ids)
        p["tick"][users] = -1

    def expire_pending(self, now: int | None = None) -> None:
        """Close as terminal every pending request older than the horizon; its activeness term
        is the user's activeness decayed over the horizon (no return)."""
        now = self.now if now is None else now
        ticks = self.pending["tick"]
        users = np.flatnonzero((ticks >= 0) & (now - ticks >= self.horizon))
        if users.size:
            active = self.activeness.peek(users, ticks[users] + self.horizon)
            self._close(users, active, done=True)

    def td_loss(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Huber loss between Q_W(s, a) and the double-DQN target."""
        f = torch.as_tensor
        items = f(self.items.lookup(batch["ids"]))
        q = self.online(f(batch["user"]), f(batch["context"]), items)[0]
        q_sa = q.gather(1, f(batch["action"])[:, None]).squeeze(1)
        with torch.no_grad():
            next_inputs = (f(batch["next_user"]), f(batch["next_context"]),
                           f(self.items.lookup(batch["next_ids"])))
            y = double_dqn_target(f(batch["reward"]), f(batch["done"]),
                                  self.online(*next_inputs)[0], self.target(*next_inputs)[0],
                                  self.gamma)
        return nn.functional.smooth_l1_loss(q_sa, y)

    def major_update(self) -> None:
        """Expire stale pending transitions, replay minibatches, sync the target network."""
        self.expire_pending()
        if self.replay.size == 0:
            return
        for _ in range(self.gradient_steps):
            idx = self.rng.integers(0, self.replay.size, size=self.batch_size)
            loss = self.td_loss(self.replay.sample(idx))
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.online.parameters(), 10.0)
            self.optimizer.step()
        self.major_updates += 1
        if self.major_updates % self.target_sync == 0:
            self.target.load_state_dict(self.online.state_dict())

    def warm_start(self, n_requests: int, chunk: int = 500) -> None:
        """Offline training on logs of the behaviour policy before serving: replay the logged
        requests through :meth:`record` (major updates every ``period``), close what is still
        pending as terminal, then forget per-user time (online ticks start again at 0)."""
        logs = generate_logs(self.context.world, n_requests=n_requests, seed=self.context.seed)
        r = logs.requests
        for start in range(0, n_requests, chunk):
            part = slice(start, start + chunk)
            obs = {key: r[key][part] for key in ("user", "context", "candidates",
                                                  "candidate_ids", "user_id")}
            self.record(obs, r["slates"][part], r["clicks"][part], r["request_id"][part])
            for _ in periods_between(start, start + len(r["slates"][part]), self.period):
                self.major_update()
        self.new_episode()
        self.major_update()

    def new_episode(self) -> None:
        """Close every pending transition as terminal and restart per-user time (activeness,
        latest tick): used when ticks start again at 0 (after warm start, on an env reset)."""
        self.expire_pending(now=self.now + self.horizon)
        a = self.activeness
        self.activeness = ActivenessTable(self.context.world.n_users, a.tau, a.boost, a.init)
        self.now = -1

    def on_period(self, requests: int) -> None:
        """A major update (paper §4.1), every ``period`` requests."""
        self.major_update()

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        optim = self.optimizer.state_dict()
        return {
            "rng": self.rng.bit_generator.state,
            "online": {k: v.detach().numpy().copy() for k, v in self.online.state_dict().items()},
            "target": {k: v.detach().numpy().copy() for k, v in self.target.state_dict().items()},
            "optimizer": {"param_groups": optim["param_groups"],
                          "state": {i: {k: v.numpy().copy() for k, v in s.items()}
                                    for i, s in optim["state"].items()}},
            "activeness": self.activeness.state_dict(),
            "pending": {k: v.copy() for k, v in self.pending.items()},
            "replay": self.replay.state_dict(),
            "items": self.items.table.copy(),
            "counters": {"requests_seen": self.requests_seen,
                         "major_updates": self.major_updates, "minor_wins": self.minor_wins,
                         "now": self.now},
            "served": None if self._served is None else {
                "slates": self._served["slates"].copy(),
                "contributor": self._served["contributor"].copy(),
                "explorer": [e.numpy().copy() for e in self._served["explorer"]]},
            "labels": self.labels.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.online.load_state_dict({k: torch.tensor(v) for k, v in state["online"].items()})
        self.target.load_state_dict({k: torch.tensor(v) for k, v in state["target"].items()})
        optim = state["optimizer"]
        self.optimizer.load_state_dict({
            "param_groups": optim["param_groups"],
            "state": {i: {k: torch.tensor(v) for k, v in s.items()}
                      for i, s in optim["state"].items()}})
        self.activeness.load_state_dict(state["activeness"])
        self.pending = {k: v.copy() for k, v in state["pending"].items()}
        self.labels.load_state_dict(state["labels"])
        self.replay.load_state_dict(state["replay"])
        self.items.table = state["items"].copy()
        for key, value in state["counters"].items():
            setattr(self, key, int(value))
        served = state.get("served")
        self._served = None if served is None else {
            "slates": served["slates"].copy(), "contributor": served["contributor"].copy(),
            "explorer": [torch.tensor(e) for e in served["explorer"]]}


__all__ = [
    "DRNAgent",
    "ActivenessTable",
    "DuelingQNet",
    "activeness_after_visit",
    "dbgd_update",
    "double_dqn_target",
    "dueling_combine",
    "epsilon_greedy_slates",
    "explore_weights",
    "probabilistic_interleave",
]
