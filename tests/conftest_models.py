"""Shared, cached synthetic data and trained models for the evaluator/generator tests.

Plain cached functions (not pytest fixtures) so that both test modules can import them
explicitly; within one pytest process the evaluator is trained once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from synthetic import SyntheticWorld

from driftrank.evaluator import EvaluatorConfig, ListwiseEvaluator, gather_slate, train_evaluator
from driftrank.evaluator.batch import as_float, as_long

torch.set_num_threads(1)

N_TRAIN = 8000
N_TEST = 400


@lru_cache(maxsize=1)
def world() -> SyntheticWorld:
    return SyntheticWorld()


@lru_cache(maxsize=1)
def train_data() -> dict:
    return world().sample(N_TRAIN, seed=1)[0]


@lru_cache(maxsize=1)
def heldout_data():
    """Held-out requests and their hidden truth."""
    return world().sample(N_TEST, seed=2)


def evaluator_config(**kw) -> EvaluatorConfig:
    c = world().config
    return EvaluatorConfig(c.user_dim, c.item_dim, c.slate_size, **{"hidden": 32, **kw})


@lru_cache(maxsize=1)
def trained_evaluator() -> ListwiseEvaluator:
    model = ListwiseEvaluator(evaluator_config())
    train_evaluator(model, train_data(), epochs=5, batch_size=128, lr=3e-3, seed=0)
    return model.eval()


def slate_inputs(batch: dict, slates) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """User, item features and ids of ``slates`` (indices into the batch's candidates)."""
    items, ids = gather_slate(
        as_float(batch["candidates"]), as_long(batch["candidate_ids"]), as_long(slates)
    )
    return as_float(batch["user"]), items, ids


def true_expected_clicks(batch: dict, truth, slates) -> float:
    return float(world().expected_clicks(truth, np.asarray(slates)).mean())
