"""Generator checkpoints: same on-disk shape and checks as the evaluator's (shared code)."""

from __future__ import annotations

from pathlib import Path

from ..evaluator.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import GeneratorConfig
from .model import SlateGenerator

__all__ = ["CheckpointError", "load", "save"]


def save(model: SlateGenerator, config: GeneratorConfig, path_dir) -> Path:
    """Save a generator checkpoint into ``path_dir`` (created if needed)."""
    return save_checkpoint(model, config, path_dir, "generator")


def load(path_dir) -> SlateGenerator:
    """Load a generator checkpoint (eval mode); its config is ``model.config``."""
    return load_checkpoint(path_dir, "generator", GeneratorConfig, SlateGenerator)
