"""Offline logs from a behaviour policy: what models are pretrained on before serving online.

A production system's logs come from its own ranker, not from a uniform one. The behaviour
policy here is a *noisy relevance ranker with exploration*: it sorts candidates by the true
attraction logit plus Gaussian noise (std 3 by default: a mediocre production model that a
learned re-ranker can beat), and with
probability ``epsilon`` per slot shows a random unused candidate instead (exploration, so the
logs cover more than the ranker's favourites).

Logs are generated from the *pre-drift* world (``WorldConfig.without_events``): the same
users and items as the online phase (same world stream), but fresh arrivals, recall and click
dice (``stream_salt``), and no discrete drift events.

Two views of the same requests:

- ``LoggedData.shown``: a tidy pandas DataFrame, one row per shown item: ``request_id``,
  ``time``, ``user_id``, ``user_f0..``, ``item_id``, ``item_f0..``, ``position``, ``slate``
  (item ids of the whole slate), ``click``, ``conversion``, ``conversion_delay`` (ticks, -1
  when no conversion).
- ``LoggedData.requests``: arrays for model training: ``user`` (R, Fu), ``context`` (R, C),
  ``candidates`` (R, N, Fi), ``candidate_ids`` (R, N), ``slates`` (R, K) indices into the
  candidates, ``clicks`` (R, K), ``conversions`` (R, K).

``save(dir)`` writes ``shown.parquet`` + ``requests.npz`` + ``config.json``; ``load(dir)`` reads
them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .behaviour import behaviour_slates
from .config import WorldConfig
from .scenarios import make_config
from .world import World

__all__ = ["LOG_STREAM_SALT", "LoggedData", "behaviour_slates", "generate_logs"]

LOG_STREAM_SALT = 7919


@dataclass
class LoggedData:
    shown: pd.DataFrame
    requests: dict[str, np.ndarray]
    config: WorldConfig

    def __len__(self) -> int:
        return int(self.requests["slates"].shape[0])

    def split(self, holdout: float = 0.2) -> tuple[dict, dict]:
        """Chronological split of ``requests`` into (train, held-out): the held-out requests
        come after the training ones, as they would in production."""
        n = len(self)
        cut = int(round(n * (1 - holdout)))
        train = {k: v[:cut] for k, v in self.requests.items()}
        test = {k: v[cut:] for k, v in self.requests.items()}
        return train, test

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.shown.to_parquet(directory / "shown.parquet", index=False)
        np.savez(directory / "requests.npz", **self.requests)
        (directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> LoggedData:
        directory = Path(directory)
        for name in ("shown.parquet", "requests.npz", "config.json"):
            if not (directory / name).exists():
                raise FileNotFoundError(
                    f"{directory / name} is missing; regenerate the logs with generate_logs()")
        shown = pd.read_parquet(directory / "shown.parquet")
        with np.load(directory / "requests.npz") as npz:
            requests = {k: npz[k] for k in npz.files}
        config = WorldConfig(**_config_from_json(json.loads(
            (directory / "config.json").read_text())))
        return cls(shown=shown, requests=requests, config=config)


def _config_from_json(d: dict) -> dict:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}


def generate_logs(
    scenario: str | WorldConfig = "stationary",
    n_requests: int = 20_000,
    seed: int = 0,
    batch_size: int = 500,
    noise: float = 3.0,
    epsilon: float = 0.1,
    on_batch=None,
    **world_overrides,
) -> LoggedData:
    """Generate ``n_requests`` logged requests from the pre-drift world of ``scenario``."""
    if n_requests < 1:
        raise ValueError(f"n_requests={n_requests} must be >= 1")
    if noise < 0 or not 0 <= epsilon <= 1:
        raise ValueError(f"need noise >= 0 and 0 <= epsilon <= 1, got {noise=}, {epsilon=}")
    config = make_config(scenario, **world_overrides).without_events()
    batch_size = min(batch_size, n_requests)
    world = World(config, batch_size, seed, stream_salt=LOG_STREAM_SALT)
    policy_rng = np.random.default_rng([seed, LOG_STREAM_SALT, 1])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "user", "context", "candidates", "candidate_ids", "slates",
        "user_id", "request_id")}
    conv_events, click_events = [], []
    steps = -(-n_requests // batch_size)
    for _ in range(steps):
        obs = world.observation()
        slates = behaviour_slates(world.true_attraction(), config.slate_size, noise, epsilon,
                                  policy_rng)
        out = world.serve(slates, with_truth=False)
        for key in ("user", "context", "candidates", "candidate_ids", "user_id"):
            parts[key].append(obs[key])
        parts["slates"].append(slates)
        parts["request_id"].append(out["request_id"])
        conv_events.append(out["conversions"])
        click_events.append(out["click_reports"])
        if on_batch is not None:  # progress reporting (a bar's update)
            on_batch()
    # conversions still pending at the end have happened but not been reported: logs only
    # contain what was reported by the end of the logging window, as in production
    requests = {k: np.concatenate(v)[:n_requests] for k, v in parts.items()}
    # clicks, like conversions, are what was reported by the end of the window (with a click
    # delay the step's own ``clicks`` are zeros: the labels arrive later and are joined here)
    requests["clicks"] = _reported_clicks(requests["request_id"], click_events,
                                          config.slate_size)
    requests["conversions"], delays = _conversion_matrix(requests, conv_events, config.slate_size)
    shown = _shown_frame(requests, delays)
    return LoggedData(shown=shown, requests=requests, config=config)


def _reported_clicks(request_id: np.ndarray, reports: list, k: int) -> np.ndarray:
    """(R, K) 0/1 clicks of the logged requests from the click reports of the window."""
    clicks = np.zeros((request_id.size, k), np.float32)
    if not reports:
        return clicks
    rid = np.concatenate([r.request_id for r in reports])
    pos = np.concatenate([r.position for r in reports])
    at = np.minimum(np.searchsorted(request_id, rid), request_id.size - 1)
    hit = request_id[at] == rid  # reports of warm-up traffic or past the window: not logged
    clicks[at[hit], pos[hit]] = 1.0
    return clicks


def _conversion_matrix(requests, conv_events, k):
    first_id = int(requests["request_id"][0])
    n = requests["request_id"].shape[0]
    conv = np.zeros((n, k), np.float32)
    delays = np.full((n, k), -1, np.int64)
    for c in conv_events:
        if len(c) == 0:
            continue
        idx = c.request_id - first_id
        keep = (idx >= 0) & (idx < n)
        conv[idx[keep], c.position[keep]] = 1.0
        delays[idx[keep], c.position[keep]] = c.delay[keep]
    return conv, delays


def _shown_frame(requests, delays) -> pd.DataFrame:
    r, k = requests["slates"].shape
    item_ids = np.take_along_axis(requests["candidate_ids"], requests["slates"], axis=1)
    item_feats = np.take_along_axis(
        requests["candidates"], requests["slates"][:, :, None], axis=1)
    frame = {
        "request_id": np.repeat(requests["request_id"], k),
        "time": np.repeat(requests["request_id"], k),  # one tick per request
        "user_id": np.repeat(requests["user_id"], k),
        "item_id": item_ids.reshape(-1),
        "position": np.tile(np.arange(k), r),
        "click": requests["clicks"].reshape(-1).astype(np.int8),
        "conversion": requests["conversions"].reshape(-1).astype(np.int8),
        "conversion_delay": delays.reshape(-1),
    }
    user = np.repeat(requests["user"], k, axis=0)
    for j in range(user.shape[1]):
        frame[f"user_f{j}"] = user[:, j]
    items = item_feats.reshape(r * k, -1)
    for j in range(items.shape[1]):
        frame[f"item_f{j}"] = items[:, j]
    df = pd.DataFrame(frame)
    df["slate"] = list(np.repeat(item_ids, k, axis=0))
    return df
