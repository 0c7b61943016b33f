"""The pretraining cache heals: an entry is either complete and verified, or rebuilt once,
atomically; concurrent builders train it once; nothing finished is lost."""

from __future__ import annotations

import multiprocessing
import os
import warnings

import pytest
import torch

from driftrank.agents.pretrained import (
    CacheRepairWarning,
    PretrainConfig,
    cache_key,
    pretrain,
)
from driftrank.envs import make_config
from driftrank.evaluator import CheckpointError
from driftrank.evaluator import load as load_evaluator

WORLD = make_config("stationary", n_users=200, n_items=300)
TINY = PretrainConfig(n_requests=1000, evaluator_epochs=1, imitation_epochs=1, pg_steps=3,
                      eval_requests=50, eval_permutations=2, hidden=16)


def _build(cache_dir, seed=0, **kw):
    torch.set_num_threads(1)
    return pretrain(WORLD, seed=seed, config=TINY, cache_dir=cache_dir, progress=False, **kw)


def _snapshot(folder):
    """Every file under ``folder`` -> (bytes, mtime): a finished entry must keep both."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _same_weights(a, b):
    for x, y in ((a.evaluator, b.evaluator), (a.generator, b.generator)):
        sx, sy = x.state_dict(), y.state_dict()
        assert all(torch.equal(sx[k], sy[k]) for k in sx)


@pytest.fixture
def built(tmp_path):
    """An entry for seed 0 and a finished neighbour (seed 1) that repairs must not touch."""
    first = _build(tmp_path)
    other = _build(tmp_path, seed=1)
    return first, other, _snapshot(other.path)


def _load_quietly(cache_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRepairWarning)  # a repair here would be a bug
        return _build(cache_dir)


def test_a_complete_entry_is_loaded_not_rebuilt(built, tmp_path):
    first, _, _ = built
    before = _snapshot(first.path)
    hit = _load_quietly(tmp_path)
    assert hit.cache_hit and hit.path == first.path
    assert _snapshot(first.path) == before
    _same_weights(first, hit)


def test_missing_metrics_is_rebuilt_once(built, tmp_path):
    first, other, other_files = built
    (first.path / "metrics.json").unlink()  # what a build killed before its last write leaves
    lines = []
    with pytest.warns(CacheRepairWarning, match=r"incomplete \(metrics\.json is missing"):
        again = _build(tmp_path, log=lines.append)
    assert not again.cache_hit and again.path == first.path
    assert any("rebuilding it" in line and str(first.path) in line for line in lines)
    assert (first.path / "metrics.json").is_file()
    _same_weights(first, again)  # same inputs, same models
    assert _load_quietly(tmp_path).cache_hit  # repaired once, then a plain hit
    assert _snapshot(other.path) == other_files  # the finished neighbour is untouched


@pytest.mark.parametrize("damage", ["evaluator/model.pt", "generator/config.json",
                                    "metrics.json"])
def test_a_corrupt_file_is_rebuilt(built, tmp_path, damage):
    first, other, other_files = built
    (first.path / damage).write_bytes(b"\x00 not what was written")
    name = damage.rsplit("/", 1)[-1].replace(".", r"\.")
    with pytest.warns(CacheRepairWarning, match=rf"is corrupt .*{name}"):
        again = _build(tmp_path)
    assert not again.cache_hit
    load_evaluator(again.path / "evaluator")  # verifies (SHA-256, config) again
    assert _load_quietly(tmp_path).cache_hit
    assert _snapshot(other.path) == other_files


def test_leftovers_of_a_killed_build_are_cleared(tmp_path):
    key = cache_key(WORLD, 0, TINY)
    entry = tmp_path / f"pretrained-{key}"
    (entry / "evaluator").mkdir(parents=True)  # a half-renamed or hand-copied entry
    (entry / "evaluator" / "model.pt").write_bytes(b"partial")
    tmp = tmp_path / f"pretrained-{key}.tmp-killed"  # a killed build's temporary folder
    (tmp / "generator").mkdir(parents=True)
    with pytest.warns(CacheRepairWarning, match="incomplete"):
        built = _build(tmp_path)
    assert built.path == entry and not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.name, entry.name + ".lock"]
    assert _load_quietly(tmp_path).cache_hit


def test_an_error_that_remains_says_what_to_do_with_the_cache(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_evaluator(tmp_path / "pretrained-x" / "evaluator")
    text = str(info.value)
    assert "config.json is missing" in text and "run the command again" in text
    assert "save one with" not in text


def _build_in_child(cache_dir):
    built = _build(cache_dir)
    return built.cache_hit, str(built.path), os.getpid()


def test_concurrent_builders_train_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map_async(_build_in_child, [tmp_path, tmp_path]).get(timeout=300)
    hits = sorted(hit for hit, _, _ in results)
    assert hits == [False, True]  # one built it; the other waited and loaded it
    assert len({path for _, path, _ in results}) == 1
    assert _load_quietly(tmp_path).cache_hit


def test_progress_shows_each_offline_stage_and_is_quiet_when_asked(tmp_path, capsys):
    _build(tmp_path / "quiet")
    assert capsys.readouterr().err == ""
    pretrain(WORLD, config=TINY, cache_dir=tmp_path / "loud", progress=True)
    err = capsys.readouterr().err
    for stage, total in (("logs", "0/2 "), ("evaluator", "0/1 "), ("imitation", "0/1 "),
                         ("policy gradient", "0/3 ")):  # one unit per batch / epoch / step
        assert f"pretraining: {stage}:   0%|          | {total}" in err, (stage, err)
