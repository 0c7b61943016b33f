"""Meta-learned initialisation for per-user fast adaptation (first-order MAML, CAVIA-style).

MAML (Finn et al., ICML 2017) meta-trains an initialisation so that a few gradient steps on a
task's first examples fit that task; MeLU (Lee et al., KDD 2019) applies it to cold-start
recommendation with users as tasks. Adapting a whole network per user is too heavy to keep for
thousands of users, so, as in CAVIA (Zintgraf et al., ICML 2019), only a small per-task vector
adapts in the inner loop while the shared network is what meta-training shapes: here the fast
vector is an offset ``delta_u`` (H numbers per user) on the generator's pointer-query bias, so
each candidate's score gains ``key(candidate) . delta_u``: a per-user preference direction in
the generator's own candidate space. The generator already accepts such per-row offsets
(``decode(param_delta=...)``), so a batch of requests from different users is one pass.

- Task loss: the imitation loss of the clicked prefix: the teacher-forced NLL of picking the
  clicked items first (in their served order), averaged over those picks only. The order of the
  unclicked rest is the behaviour policy's, not the user's, and a request without clicks says
  nothing about the user, so neither enters the loss.
- Inner loop: ``steps`` plain gradient steps on ``delta`` from its current value (zero for a
  new user).
- Outer loop (first-order MAML): the query loss at the adapted ``delta`` is back-propagated to
  the shared generator with ``delta`` held fixed (no second derivatives), one Adam step per
  meta-batch of users; support = a user's earlier logged requests, query = the next ones, as
  at serving time where the user's first feedback adapts what they are shown next.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch

from ..generator import SlateGenerator, imitation_targets
from ..generator.tensors import request_tensors

FAST = "pointer_query.bias"


def with_clicks(data: Mapping) -> dict[str, np.ndarray]:
    """The rows of ``data`` with at least one click, each with its imitation target."""
    keep = np.asarray(data["clicks"]).sum(axis=1) > 0
    out = {k: np.asarray(v)[keep] for k, v in data.items()}
    out["targets"] = imitation_targets(out["slates"], out["clicks"])
    out["n_clicked"] = (out["clicks"] > 0).sum(axis=1)
    return out


def _per_task(per_row: torch.Tensor, task: torch.Tensor, n_tasks: int) -> torch.Tensor:
    """Mean of ``per_row`` within each task (T,)."""
    sums = torch.zeros(n_tasks).index_add(0, task, per_row)
    counts = torch.zeros(n_tasks).index_add(0, task, torch.ones_like(per_row))
    return sums / counts.clamp(min=1.0)


def row_loss(generator: SlateGenerator, enc, h0, batch, delta_rows) -> torch.Tensor:
    """NLL per row (B,) of the clicked prefix with the per-row fast offsets ``delta_rows``."""
    n_clicked = batch["n_clicked"]
    targets = batch["targets"][:, : int(n_clicked.max())]
    _, logp = generator.decode(enc, h0, slates=targets, param_delta={FAST: delta_rows})
    mask = torch.arange(targets.shape[1]) < n_clicked[:, None]
    return -(logp * mask).sum(dim=1) / n_clicked


def inner_adapt(generator: SlateGenerator, batch: Mapping, task: torch.Tensor,
                delta: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """``steps`` gradient steps on each task's fast vector ``delta`` (T, H) from its support
    rows ``batch`` (tensors ``user``, ``candidates``, ``candidate_ids``, ``targets``; ``task``
    maps rows to tasks). Returns the adapted (T, H), detached. The generator is not changed."""
    if steps < 0 or lr < 0:
        raise ValueError(f"inner loop needs steps >= 0 and lr >= 0, got {steps}, {lr}")
    with torch.no_grad():
        enc, h0 = generator.encode(batch["user"], batch["candidates"], batch["candidate_ids"])
    delta = delta.detach().clone()
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = _per_task(row_loss(generator, enc, h0, batch, delta[task]), task,
                             delta.shape[0]).sum()
            (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta - lr * grad).detach()
    return delta


def query_loss(generator: SlateGenerator, batch: Mapping, task: torch.Tensor,
               delta: torch.Tensor) -> torch.Tensor:
    """Mean over tasks of the per-task mean NLL on ``batch`` at fast vectors ``delta``."""
    enc, h0 = generator.encode(batch["user"], batch["candidates"], batch["candidate_ids"])
    return _per_task(row_loss(generator, enc, h0, batch, delta[task]), task,
                     delta.shape[0]).mean()


def task_rows(user_ids: np.ndarray, min_rows: int) -> list[np.ndarray]:
    """Row indices per user (chronological), for users with at least ``min_rows`` rows."""
    order = np.argsort(user_ids, kind="stable")
    users, starts = np.unique(user_ids[order], return_index=True)
    groups = np.split(order, starts[1:])
    return [g for g in groups if len(g) >= min_rows]


def _tensors(data: Mapping, rows: np.ndarray) -> dict[str, torch.Tensor]:
    t = request_tensors({k: np.asarray(data[k])[rows] for k in
                         ("user", "candidates", "candidate_ids", "slates")})
    t["targets"] = torch.as_tensor(np.asarray(data["targets"])[rows], dtype=torch.int64)
    t["n_clicked"] = torch.as_tensor(np.asarray(data["n_clicked"])[rows], dtype=torch.float32)
    return t


def meta_train(generator: SlateGenerator, data: Mapping, *, steps: int = 200,
               tasks_per_step: int = 32, support: int = 1, query: int = 2,
               inner_steps: int = 3, inner_lr: float = 1.0, outer_lr: float = 3e-4,
               seed: int = 0) -> dict:
    """First-order MAML of ``generator`` (in place) with the users of ``data`` as tasks.

    ``data`` holds the logged arrays (``user`` = model user input, ``candidates``,
    ``candidate_ids``, ``slates``, ``clicks``) and ``user_id``. Returns the per-step query
    losses before and after the inner loop, and the seconds it took.
    """
    if min(steps, tasks_per_step, support, query) < 1 or inner_steps < 1 or outer_lr <= 0:
        raise ValueError(
            f"meta_train needs steps, tasks_per_step, support, query, inner_steps >= 1 and "
            f"outer_lr > 0; got {steps}, {tasks_per_step}, {support}, {query}, {inner_steps}, "
            f"{outer_lr}")
    t0 = time.perf_counter()
    clicked = with_clicks(data)
    groups = task_rows(clicked["user_id"], support + query)
    if not groups:
        raise ValueError(f"no user has {support + query} logged requests with a click; log "
                         "more requests or lower support/query")
    rng = np.random.default_rng([seed, 0x3A31])
    opt = torch.optim.Adam(generator.parameters(), lr=outer_lr)
    h = generator.config.hidden
    before, after = [], []
    generator.train()
    try:
        for _ in range(steps):
            picked = rng.choice(len(groups), size=min(tasks_per_step, len(groups)),
                                replace=False)
            s_rows, q_rows, s_task, q_task = [], [], [], []
            for i, g in enumerate(picked):
                rows = groups[g]
                start = int(rng.integers(0, len(rows) - support - query + 1))
                s_rows.append(rows[start:start + support])
                q_rows.append(rows[start + support:start + support + query])
                s_task += [i] * support
                q_task += [i] * query
            s_task_t, q_task_t = torch.as_tensor(s_task), torch.as_tensor(q_task)
            sup = _tensors(clicked, np.concatenate(s_rows))
            qry = _tensors(clicked, np.concatenate(q_rows))
            zero = torch.zeros(len(picked), h)
            delta = inner_adapt(generator, sup, s_task_t, zero, inner_steps, inner_lr)
            loss = query_loss(generator, qry, q_task_t, delta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            after.append(float(loss.detach()))
            with torch.no_grad():
                before.append(float(query_loss(generator, qry, q_task_t, zero)))
    finally:
        generator.eval()
    return {"query_loss_adapted": after, "query_loss_unadapted": before,
            "n_tasks": len(groups), "seconds": time.perf_counter() - t0}


class FastWeights:
    """Per-user fast vectors at serving time: zero for a new user, adapted on its feedback."""

    def __init__(self, hidden: int, steps: int = 3, lr: float = 1.0):
        if steps < 1 or lr <= 0:
            raise ValueError(f"fast adaptation needs steps >= 1 and lr > 0, got {steps}, {lr}")
        self.hidden, self.steps, self.lr = int(hidden), int(steps), float(lr)
        self.table: dict[int, np.ndarray] = {}

    def rows(self, user_ids: np.ndarray) -> torch.Tensor:
        """Fast vectors (B, H) of the requesting users."""
        zero = np.zeros(self.hidden, np.float32)
        return torch.as_tensor(np.stack([self.table.get(int(u), zero) for u in user_ids]))

    def adapt(self, generator: SlateGenerator, data: Mapping) -> int:
        """Adapt the fast vectors of the users in ``data`` (one served batch, with
        ``user_id``) on their requests with a click; returns how many users moved."""
        clicked = with_clicks(data)
        if not len(clicked["user_id"]):
            return 0
        users, task = np.unique(clicked["user_id"], return_inverse=True)
        batch = _tensors(clicked, np.arange(len(task)))
        delta = inner_adapt(generator, batch, torch.as_tensor(task), self.rows(users),
                            self.steps, self.lr)
        for u, d in zip(users.tolist(), delta.numpy(), strict=True):
            self.table[int(u)] = d
        return len(users)

    def state_dict(self) -> dict:
        return {"table": {u: d.copy() for u, d in self.table.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.table = {int(u): np.array(d, np.float32) for u, d in state["table"].items()}
