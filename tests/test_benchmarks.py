"""Benchmarks run and report every figure they promise (their speed is never asserted)."""

from __future__ import annotations

from driftrank.experiments.bench_models import bench_models
from driftrank.experiments.timing import median_seconds


def test_bench_models_reports_every_model_and_batch():
    out = bench_models(threads=1, batches=(1, 3), repeats=2, hidden=16)
    keys = {(r["model"], r["batch"]) for r in out["results"]}
    assert keys == {(m, b) for m in ("generator_greedy", "evaluator_score") for b in (1, 3)}
    assert all(r["ms_per_batch"] > 0 and r["requests_per_s"] > 0 for r in out["results"])


def test_median_seconds_calls_warmup_then_repeats():
    calls = []
    seconds = median_seconds(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7 and seconds >= 0
