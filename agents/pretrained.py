"""The offline phase: logs -> evaluator -> generator, cached on disk.

Before serving online, a production re-ranker is trained on its own logs. ``pretrain`` does
exactly that for one world config (its ``world_seed`` fixes the users and items; ``seed`` here
is the training seed, independent of the episode seeds a grid runs, so one pretraining serves
every cell of a world config):

1. generate logs from the pre-drift world with the behaviour policy (``envs.logs``);
2. train the list-wise evaluator on them (BCE, chronological hold-out for metrics);
3. warm-start the generator by imitation of the logs' best-clicked orders, then train it by
   policy gradient against the frozen evaluator;
4. report held-out metrics (and, with ``measure``, the caller's own: the experiments pass
   :func:`driftrank.experiments.truth_metrics.truth_metrics`, which reads the world's truth,
   something agents never do) and save both checkpoints under ``cache_dir/<key>/`` where
   ``key`` hashes the world config, the training seed and the training config. A second call
   with the same inputs loads instead of training.

Models read ``user`` and ``context`` concatenated as their user input (time of day matters in
the periodic scenario); :func:`model_inputs` is the one place that builds it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import evaluator as ev
from .. import generator as gen
from ..envs import make_config
from ..envs.config import WorldConfig
from ..envs.logs import generate_logs

FORMAT_VERSION = 2  # 2: held-out truth metrics on a warmed-up world


def model_inputs(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model inputs from an observation batch (or logged requests): user ++ context."""
    return {
        "user": np.concatenate([obs["user"], obs["context"]], axis=1).astype(np.float32),
        "candidates": obs["candidates"],
        "candidate_ids": obs["candidate_ids"],
    }


@dataclass(frozen=True)
class PretrainConfig:
    """Offline training settings. Defaults train the default world in about a minute.

    Why these defaults (measured on the default world, see the README):

    - ``evaluator_ids=False``: a 64-wide embedding per catalog id memorises the logs (train
      AUC 0.84, held-out 0.78); without it the evaluator generalises (held-out AUC 0.80, on par
      with a hand-built bilinear logistic model) and still sees item quality through the live
      CTR features. The generator keeps its ids: imitation gains from them.
    - 40k logged requests and 6 evaluator epochs: held-out AUC keeps rising up to there.
    - ``pg_lr=3e-4``: the evaluator is an imperfect reward model; a larger step exploits it
      (true reward falls while the evaluator's score rises), and ``pg_imitation_coef`` keeps
      the imitation loss in the objective so that small logs cannot undo the warm start.
    """

    n_requests: int = 40_000
    holdout: float = 0.2
    hidden: int = 64
    evaluator_epochs: int = 6
    evaluator_lr: float = 3e-3
    evaluator_weight_decay: float = 1e-5
    evaluator_ids: bool = False
    imitation_epochs: int = 4
    pg_steps: int = 150
    pg_lr: float = 3e-4
    pg_imitation_coef: float = 1.0
    behaviour_noise: float = 3.0
    behaviour_epsilon: float = 0.1
    eval_requests: int = 1_000
    eval_permutations: int = 8

    def replace(self, **kw) -> PretrainConfig:
        unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown pretraining setting(s) {unknown}; valid: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **kw)


@dataclass
class Pretrained:
    evaluator: ev.ListwiseEvaluator
    generator: gen.SlateGenerator
    metrics: dict
    path: Path
    cache_hit: bool = False
    world: WorldConfig | None = field(default=None, repr=False)


def cache_key(world: WorldConfig, seed: int, config: PretrainConfig) -> str:
    """Hash of everything that determines the checkpoints (not the episode length)."""
    w = world.without_events().to_dict()
    for volatile in ("max_steps", "scenario"):
        w.pop(volatile, None)
    payload = json.dumps({"world": w, "seed": int(seed), "train": dataclasses.asdict(config),
                          "version": FORMAT_VERSION, "torch": torch.__version__.split("+")[0]},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pretrain(
    world: WorldConfig | str = "stationary",
    seed: int = 0,
    config: PretrainConfig | None = None,
    cache_dir: str | Path = ".driftrank_cache",
    threads: int = 1,
    log=None,
    measure=None,
) -> Pretrained:
    """Pretrained evaluator + generator for ``world`` (trained, or loaded from the cache).

    ``threads`` is not used here any more: the caller sets torch's threads at its own boundary
    (a cell, the grid's preparation, a command); it stays for the callers that pass it. ``measure(world, seed, evaluator,
    generator, config, imitated=...) -> dict``: extra held-out metrics stored with the models.
    """
    world = make_config(world) if isinstance(world, str) else world
    config = config or PretrainConfig()
    path = Path(cache_dir) / f"pretrained-{cache_key(world, seed, config)}"
    if (path / "metrics.json").exists():
        return _load(path, world)
    say = log or (lambda msg: None)
    start = time.perf_counter()

    say(f"generating {config.n_requests} logged requests")
    logs = generate_logs(world, n_requests=config.n_requests, seed=seed,
                         noise=config.behaviour_noise, epsilon=config.behaviour_epsilon)
    train, held = logs.split(config.holdout)
    train, held = _as_model_data(train), _as_model_data(held)
    t_logs = time.perf_counter() - start

    say("training the evaluator")
    user_dim = train["user"].shape[1]
    item_dim = train["candidates"].shape[2]
    k = world.slate_size
    evaluator = ev.ListwiseEvaluator(ev.EvaluatorConfig(
        user_dim=user_dim, item_dim=item_dim, slate_size=k, hidden=config.hidden, seed=seed,
        use_ids=config.evaluator_ids))
    ev_metrics = ev.train_evaluator(
        evaluator, train, epochs=config.evaluator_epochs, lr=config.evaluator_lr, seed=seed,
        weight_decay=config.evaluator_weight_decay, valid=held)
    evaluator.eval()

    say("training the generator (imitation, then policy gradient)")
    generator = gen.SlateGenerator(gen.GeneratorConfig(
        user_dim=user_dim, item_dim=item_dim, slate_size=k, hidden=config.hidden, seed=seed))
    gen.train_imitation(generator, train, epochs=config.imitation_epochs, seed=seed)
    imitated = copy.deepcopy(generator).eval()
    gen.train_policy_gradient(generator, evaluator, train, steps=config.pg_steps,
                              lr=config.pg_lr, seed=seed,
                              imitation_coef=config.pg_imitation_coef)
    generator.eval()
    t_train = time.perf_counter() - start - t_logs

    say("measuring held-out metrics")
    metrics = {
        "evaluator_auc": ev_metrics["valid_auc"],
        "evaluator_logloss": ev_metrics["valid_logloss"],
        "position_baseline_auc": _position_baseline_auc(train, held),
        **(measure(world, seed, evaluator, generator, config, imitated=imitated)
           if measure else {}),
        "logs_seconds": t_logs,
        "train_seconds": t_train,
        "n_train_requests": int(train["slates"].shape[0]),
        "n_heldout_requests": int(held["slates"].shape[0]),
    }
    _save_atomically(path, evaluator, generator, metrics, world, seed, config)
    return Pretrained(evaluator, generator, metrics, path, cache_hit=False, world=world)


def _as_model_data(requests: dict) -> dict:
    data = model_inputs(requests)
    data["slates"] = requests["slates"]
    data["clicks"] = requests["clicks"]
    return data


def _position_baseline_auc(train: dict, held: dict) -> float:
    """AUC of predicting a click by its position's training CTR alone."""
    ctr = train["clicks"].mean(axis=0)
    pred = np.broadcast_to(ctr, held["clicks"].shape)
    return ev.auc(held["clicks"].reshape(-1), pred.reshape(-1))


def _save_atomically(path: Path, evaluator, generator, metrics, world, seed, config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        ev.save(evaluator, evaluator.config, tmp / "evaluator")
        gen.save(generator, generator.config, tmp / "generator")
        (tmp / "world.json").write_text(json.dumps(world.to_dict(), indent=1))
        (tmp / "train.json").write_text(json.dumps(
            {"seed": seed, **dataclasses.asdict(config)}, indent=1))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        try:
            os.replace(tmp, path)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(path: Path, world: WorldConfig) -> Pretrained:
    try:
        evaluator = ev.load(path / "evaluator")
        generator = gen.load(path / "generator")
        metrics = json.loads((path / "metrics.json").read_text())
    except (ev.CheckpointError, gen.CheckpointError):
        raise
    except Exception as exc:
        raise ev.CheckpointError(
            f"pretrained cache {path} is unreadable ({exc}); delete that folder and run again "
            "to retrain") from exc
    evaluator.eval()
    generator.eval()
    return Pretrained(evaluator, generator, metrics, path, cache_hit=True, world=world)
