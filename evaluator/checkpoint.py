"""Checkpoints: a plain ``state_dict`` (``model.pt``) plus a JSON config (``config.json``).

Why this shape: a ``state_dict`` loads with ``torch.load(weights_only=True)`` (no pickle code
execution), and the JSON config is enough to rebuild the module first. The JSON also records
the model kind and the SHA-256 of the state file, so a truncated or swapped file is reported as
such instead of surfacing as an obscure unpickling or size-mismatch error. Files are written to
a temporary name and renamed, so an interrupted save never leaves a half-written checkpoint
that looks valid.

The generic ``save_checkpoint``/``load_checkpoint`` are shared with ``driftrank.generator``;
``save``/``load`` here are the evaluator's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from .config import EvaluatorConfig
from .model import ListwiseEvaluator

STATE_FILE = "model.pt"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint directory cannot be loaded (missing, corrupt, or not matching its config)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fix(path_dir: Path) -> str:
    """What to do about an unusable checkpoint folder, in terms of where it came from."""
    return (f"if {path_dir} is in driftrank's pretraining cache, run the command again: "
            "driftrank verifies cache entries and rebuilds a broken one by itself; if you saved "
            f"it yourself, save the model again (driftrank.evaluator.save / "
            f"driftrank.generator.save) or point to another folder")


def save_checkpoint(model: nn.Module, config, path_dir, kind: str) -> Path:
    """Write ``model``'s state and ``config`` (a dataclass) into ``path_dir``; return it."""
    own = getattr(model, "config", None)
    if own is not None and own != config:
        raise ValueError(
            f"config {config} differs from the model's own config {own}; the checkpoint would "
            f"not load back: pass model.config"
        )
    path_dir = Path(path_dir)
    path_dir.mkdir(parents=True, exist_ok=True)
    state_path, config_path = path_dir / STATE_FILE, path_dir / CONFIG_FILE
    tmp_state = path_dir / (STATE_FILE + ".tmp")
    torch.save(model.state_dict(), tmp_state)
    meta = {
        "kind": kind,
        "format": FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "state_file": STATE_FILE,
        "state_sha256": _sha256(tmp_state),
        "torch_version": torch.__version__,
    }
    tmp_config = path_dir / (CONFIG_FILE + ".tmp")
    tmp_config.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp_state, state_path)
    os.replace(tmp_config, config_path)
    return path_dir


def load_checkpoint(path_dir, kind: str, config_cls, model_cls) -> nn.Module:
    """Rebuild a ``model_cls`` from ``path_dir``; raise :class:`CheckpointError` if unusable."""
    path_dir = Path(path_dir)
    state_path, config_path = path_dir / STATE_FILE, path_dir / CONFIG_FILE
    for p in (config_path, state_path):
        if not p.is_file():
            raise CheckpointError(
                f"no {kind} checkpoint in {path_dir}: {p.name} is missing (a save that was "
                f"interrupted, or not a checkpoint folder); {_fix(path_dir)}"
            )
    try:
        meta = json.loads(config_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("top level is not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path} is corrupt ({e}); {_fix(path_dir)}") from e
    if meta.get("kind") != kind:
        raise CheckpointError(
            f"{config_path} holds a {meta.get('kind')!r} checkpoint, expected {kind!r}; "
            f"load it with the matching loader or {_fix(path_dir)}"
        )
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format {meta.get('format')!r}, this driftrank reads "
            f"{FORMAT_VERSION}; {_fix(path_dir)}"
        )
    try:
        config = config_cls(**meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{config_path} has an invalid {config_cls.__name__} ({e}); {_fix(path_dir)}"
        ) from e
    if meta.get("state_sha256") != _sha256(state_path):
        raise CheckpointError(
            f"{state_path} is corrupt or was replaced (its SHA-256 does not match "
            f"{config_path.name}); {_fix(path_dir)}"
        )
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged archive
        raise CheckpointError(f"{state_path} cannot be read ({e}); {_fix(path_dir)}") from e
    model = model_cls(config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{state_path} does not match the config in {config_path.name} ({e}); "
            f"{_fix(path_dir)}"
        ) from e
    model.eval()
    return model


def save(model: ListwiseEvaluator, config: EvaluatorConfig, path_dir) -> Path:
    """Save an evaluator checkpoint into ``path_dir`` (created if needed)."""
    return save_checkpoint(model, config, path_dir, "evaluator")


def load(path_dir) -> ListwiseEvaluator:
    """Load an evaluator checkpoint (eval mode); its config is ``model.config``."""
    return load_checkpoint(path_dir, "evaluator", EvaluatorConfig, ListwiseEvaluator)
