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
   with the same inputs loads instead of training;
   an entry that is incomplete or fails verification is rebuilt (see :func:`pretrain`).

Models read ``user`` and ``context`` concatenated as their user input (time of day matters in
the periodic scenario); :func:`model_inputs` is the one place that builds it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
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
METRICS_FILE = "metrics.json"  # written last: an entry without it is incomplete


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
    key = {"world": w, "seed": int(seed), "train": dataclasses.asdict(config),
           "version": FORMAT_VERSION, "torch": torch.__version__.split("+")[0]}
    if world.click_delay > 0:  # logs join late click reports since then; older entries are stale
        key["logs"] = "late-clicks-joined"
    payload = json.dumps(key, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pretrain(
    world: WorldConfig | str = "stationary",
    seed: int = 0,
    config: PretrainConfig | None = None,
    cache_dir: str | Path = ".driftrank_cache",
    threads: int = 1,
    log=None,
    measure=None,
    progress: bool | None = None,
) -> Pretrained:
    """Pretrained evaluator + generator for ``world`` (trained, or loaded from the cache).

    The cache entry ``cache_dir/pretrained-<key>/`` is used only when it is complete and its
    checkpoints verify (SHA-256, config); anything else (a missing ``metrics.json``, a corrupt
    file, a folder left by a killed run) is rebuilt, once, and swapped in atomically. Builders of
    one entry take turns on a lock file next to it, so concurrent cells train it once and the
    others load it. ``log`` receives one line per stage and per repair; ``progress`` shows a
    tqdm bar with an ETA for each stage (None: only when stderr is a terminal).
    """
    world = make_config(world) if isinstance(world, str) else world
    config = config or PretrainConfig()
    path = Path(cache_dir) / f"pretrained-{cache_key(world, seed, config)}"
    found, _ = _try_load(path, world)
    if found is not None:
        return found
    say = log or (lambda msg: None)
    with _build_lock(path, say):
        found, problem = _try_load(path, world)
        if found is not None:  # another process built it while this one waited
            return found
        if problem is not None:
            message = (f"pretraining cache entry {path} is {problem}; rebuilding it (nothing "
                       "else in the cache is touched)")
            say(message)
            warnings.warn(message, CacheRepairWarning, stacklevel=2)
        _remove_leftovers(path)
        return _train(path, world, seed, config, say, progress, measure)


class CacheRepairWarning(UserWarning):
    """A pretraining cache entry was incomplete or corrupt and is being rebuilt."""


def _train(path: Path, world: WorldConfig, seed: int, config: PretrainConfig, say,
           progress: bool | None, measure=None) -> Pretrained:
    start = time.perf_counter()
    say(f"generating {config.n_requests} logged requests")
    with _bar(progress, -(-config.n_requests // min(500, config.n_requests)), "logs",
              "batch") as bar:
        logs = generate_logs(world, n_requests=config.n_requests, seed=seed,
                             noise=config.behaviour_noise, epsilon=config.behaviour_epsilon,
                             on_batch=bar.update)
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
    with _bar(progress, config.evaluator_epochs, "evaluator", "epoch") as bar:
        ev_metrics = ev.train_evaluator(
            evaluator, train, epochs=config.evaluator_epochs, lr=config.evaluator_lr,
            seed=seed, weight_decay=config.evaluator_weight_decay, valid=held,
            on_epoch=bar.update)
    evaluator.eval()

    say("training the generator (imitation, then policy gradient)")
    generator = gen.SlateGenerator(gen.GeneratorConfig(
        user_dim=user_dim, item_dim=item_dim, slate_size=k, hidden=config.hidden, seed=seed))
    with _bar(progress, config.imitation_epochs, "imitation", "epoch") as bar:
        gen.train_imitation(generator, train, epochs=config.imitation_epochs, seed=seed,
                            on_epoch=bar.update)
    imitated = copy.deepcopy(generator).eval()
    with _bar(progress, config.pg_steps, "policy gradient", "step") as bar:
        gen.train_policy_gradient(generator, evaluator, train, steps=config.pg_steps,
                                  lr=config.pg_lr, seed=seed,
                                  imitation_coef=config.pg_imitation_coef, on_step=bar.update)
    generator.eval()
    t_train = time.perf_counter() - start - t_logs

    say("measuring held-out metrics")
    with _bar(progress, 1, "held-out metrics", "stage") as bar:
        measured = (measure(world, seed, evaluator, generator, config, imitated=imitated)
                    if measure else {})
        bar.update()
    metrics = {
        "evaluator_auc": ev_metrics["valid_auc"],
        "evaluator_logloss": ev_metrics["valid_logloss"],
        "position_baseline_auc": _position_baseline_auc(train, held),
        **measured,
        "logs_seconds": t_logs,
        "train_seconds": t_train,
        "n_train_requests": int(train["slates"].shape[0]),
        "n_heldout_requests": int(held["slates"].shape[0]),
    }
    _save_atomically(path, evaluator, generator, metrics, world, seed, config)
    return Pretrained(evaluator, generator, metrics, path, cache_hit=False, world=world)


def _bar(progress: bool | None, total: int, stage: str, unit: str):
    """A tqdm bar for one offline stage (its ETA is the stage's own: every unit costs about
    the same); ``progress=None`` shows it only on a terminal, False never."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"pretraining: {stage}", unit=unit, leave=False,
                disable=None if progress is None else not progress)


@contextlib.contextmanager
def _build_lock(path: Path, say):
    """Hold the entry's lock file while building it (released if the process dies)."""
    from filelock import FileLock, Timeout

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the pretraining cache folder {path.parent} ({exc}); pass "
                      "a writable cache dir (cache_dir= / --cache-dir)") from exc
    lock = FileLock(str(path.parent / f"{path.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another process is building {path}; waiting for it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(path: Path) -> None:
    """Delete what interrupted builds of this entry left (temporary and replaced folders).
    Called with the entry's lock held, so no live build owns them."""
    for pattern in (f"{path.name}.tmp-*", f"{path.name}.broken-*"):
        for leftover in path.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


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
    """Write the entry into a temporary folder, then rename it into place; a broken entry at
    ``path`` is renamed aside first and deleted once the new one is in place. ``metrics.json``
    is written last: an entry without it is incomplete by definition."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        ev.save(evaluator, evaluator.config, tmp / "evaluator")
        gen.save(generator, generator.config, tmp / "generator")
        (tmp / "world.json").write_text(json.dumps(world.to_dict(), indent=1))
        (tmp / "train.json").write_text(json.dumps(
            {"seed": seed, **dataclasses.asdict(config)}, indent=1))
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
        broken = None
        if path.exists():
            broken = path.with_name(f"{path.name}.broken-{os.getpid()}")
            os.replace(path, broken)
        os.replace(tmp, path)
        if broken is not None:
            shutil.rmtree(broken, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _try_load(path: Path, world: WorldConfig) -> tuple[Pretrained | None, str | None]:
    """(the entry, None) if complete and verified; (None, what is wrong) if it exists but is
    not; (None, None) if there is none."""
    if not path.exists():
        return None, None
    if not (path / METRICS_FILE).is_file():
        return None, f"incomplete ({METRICS_FILE} is missing: a build was interrupted)"
    try:
        metrics = json.loads((path / METRICS_FILE).read_text())
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return None, f"corrupt ({path / METRICS_FILE} is unreadable: {exc})"
    try:
        evaluator = ev.load(path / "evaluator")
        generator = gen.load(path / "generator")
    except ev.CheckpointError as exc:
        return None, f"corrupt ({exc})"
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    evaluator.eval()
    generator.eval()
    return Pretrained(evaluator, generator, metrics, path, cache_hit=True, world=world), None
