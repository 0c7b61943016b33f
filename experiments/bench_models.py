"""Latency of the models on one request batch, for ``driftrank bench models``.

Timings are medians over repeats of a full call (greedy slate generation; evaluator scoring of
one slate per request) under ``torch.inference_mode`` with the default sizes (N=50, K=10,
Fu=30, Fi=32, H=64) and random weights: speed does not depend on training. Timing lives here,
never in tests.
"""

from __future__ import annotations

import torch

from ..evaluator.config import EvaluatorConfig
from ..evaluator.model import ListwiseEvaluator
from ..generator.config import GeneratorConfig
from ..generator.model import SlateGenerator
from .threads import start_of_work
from .timing import median_seconds


def bench_models(
    threads: int = 1,
    batches: tuple[int, ...] = (1, 64, 256),
    repeats: int = 30,
    n_candidates: int = 50,
    slate_size: int = 10,
    user_dim: int = 30,
    item_dim: int = 32,
    hidden: int = 64,
) -> dict:
    """Median latency per batch of the generator (greedy) and the evaluator (score).

    Returns ``{"threads", "torch_version", "sizes": {...}, "results": [{"model", "batch",
    "ms_per_batch", "ms_per_request", "requests_per_s"}, ...]}``. A benchmark is a boundary
    of work: it sets torch's threads to ``threads``.
    """
    start_of_work(threads)
    gen = SlateGenerator(GeneratorConfig(user_dim, item_dim, slate_size, hidden=hidden)).eval()
    ev = ListwiseEvaluator(EvaluatorConfig(user_dim, item_dim, slate_size, hidden=hidden))
    ev.eval()
    rng = torch.Generator().manual_seed(0)
    results = []
    for b in batches:
        user = torch.randn(b, user_dim, generator=rng)
        cand = torch.randn(b, n_candidates, item_dim, generator=rng)
        ids = torch.randint(0, 10**9, (b, n_candidates), generator=rng)
        items, item_ids = cand[:, :slate_size], ids[:, :slate_size]
        with torch.inference_mode():
            calls = {
                "generator_greedy": lambda u=user, c=cand, i=ids: gen.greedy(u, c, i),
                "evaluator_score": lambda u=user, it=items, i=item_ids: ev.score(u, it, i),
            }
            for name, fn in calls.items():
                sec = median_seconds(fn, repeats, warmup=3)
                results.append(
                    {
                        "model": name,
                        "batch": b,
                        "ms_per_batch": sec * 1e3,
                        "ms_per_request": sec * 1e3 / b,
                        "requests_per_s": b / sec,
                    }
                )
    return {
        "threads": threads,
        "torch_version": torch.__version__,
        "sizes": {
            "n_candidates": n_candidates,
            "slate_size": slate_size,
            "user_dim": user_dim,
            "item_dim": item_dim,
            "hidden": hidden,
        },
        "results": results,
    }
