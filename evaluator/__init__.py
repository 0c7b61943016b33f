"""driftrank.evaluator: the list-wise click model (torch).

Predicts the per-position click probability of a whole ordered slate, exposes its per-position
hidden vectors (ReLoop2's memory keys) and a slate score (expected reward). Imports numpy,
torch and ``driftrank.envs`` types only.
"""

from .batch import gather_slate, logged_tensors
from .checkpoint import CheckpointError, load, save
from .config import EvaluatorConfig
from .losses import bce, reloop_loss, self_correction
from .metrics import auc, log_loss, spearman
from .model import ListwiseEvaluator
from .train import evaluate_logged, predict_logged, train_evaluator

__all__ = [
    "CheckpointError",
    "EvaluatorConfig",
    "ListwiseEvaluator",
    "auc",
    "bce",
    "evaluate_logged",
    "gather_slate",
    "load",
    "log_loss",
    "logged_tensors",
    "predict_logged",
    "reloop_loss",
    "save",
    "self_correction",
    "spearman",
    "train_evaluator",
]
