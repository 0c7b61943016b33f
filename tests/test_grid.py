"""Grids: the spec, the results store, resume after kill -9, failures, and Ray (one shared
2-node session from conftest)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftrank.agents import BaseAgent, register_agent
from driftrank.experiments import store
from driftrank.experiments.grid import GridError, GridSpec, run_grid
from driftrank.experiments.launch_ray import ray_task_options, shipped_factories
from driftrank.experiments.results import load_results
from driftrank.experiments.runner import TIMING_COLUMNS, VOLATILE_COLUMNS, run_cell

WORLD = {"n_users": 300, "n_items": 200}
TIMEOUT = 120  # seconds, for subprocesses and bounded polling


def small_spec(**kw) -> GridSpec:
    base = dict(scenarios=["stationary"], agents=["random", "oracle"], seeds=[0],
                requests=1000, batch=100, window=500, world=dict(WORLD))
    base.update(kw)
    return GridSpec(**base)


def stats(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# ------------------------------------------------------------------ test agents
CALLS = {"boom": 0, "prepare": []}


@register_agent("test-boom", "raises in act (tests only)")
class BoomAgent(BaseAgent):
    name = "test-boom"

    def act(self, obs):
        CALLS["boom"] += 1
        raise RuntimeError("boom: this agent always fails")


@register_agent("test-prep", "records prepare() calls (tests only)")
class PrepAgent(BaseAgent):
    name = "test-prep"

    def __init__(self, context, flavour: int = 0):
        super().__init__(context)

    @classmethod
    def prepare(cls, context, flavour: int = 0):
        CALLS["prepare"].append((context, flavour))

    def act(self, obs):
        b = obs["candidate_ids"].shape[0]
        return np.tile(np.arange(self.context.slate_size), (b, 1))


@register_agent("test-bad-prep", "prepare() raises (tests only)")
class BadPrepAgent(PrepAgent):
    @staticmethod
    def prepare(context):
        raise OSError("no checkpoint for you")


# ------------------------------------------------------------------ spec
def test_cells_are_the_cartesian_product_in_order():
    spec = small_spec(scenarios=["stationary", "abrupt-shift"],
                      agents=["random", ("oracle", {})], seeds=[0, 1],
                      scenario_world={"abrupt-shift": {"abrupt_times": [500]}})
    cells = spec.cells()
    assert len(cells) == 8
    assert [(c.scenario, c.agent, c.seed) for c in cells[:4]] == [
        ("stationary", "random", 0), ("stationary", "random", 1),
        ("stationary", "oracle", 0), ("stationary", "oracle", 1)]
    assert cells[4].world == {**WORLD, "abrupt_times": [500]}
    assert cells[0].world == WORLD
    assert len({c.cell_id for c in cells}) == 8
    again = GridSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert [c.cell_id for c in again.cells()] == [c.cell_id for c in cells]
    assert again.grid_id == spec.grid_id


@pytest.mark.parametrize("kw, needle", [
    (dict(scenarios=["nope"]), "nope"),
    (dict(seeds=[0, 0]), r"\[0\]"),
    (dict(seeds=[-1]), "seed=-1"),
    (dict(agents=[]), "agents is empty"),
    (dict(agents=["random", "random"]), "more than once"),
    (dict(world={"n_userz": 1}), "n_userz"),
    (dict(scenario_world={"gradual": {}}), "gradual"),
    (dict(requests=1050), "requests=1050"),
])
def test_bad_spec_values_are_named(kw, needle):
    with pytest.raises(ValueError, match=needle):
        small_spec(**kw)


def test_unknown_agent_or_config_key_fails_before_any_cell(tmp_path):
    with pytest.raises(ValueError, match="no-such-agent"):
        run_grid(small_spec(agents=["no-such-agent"]), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="colour"):
        run_grid(small_spec(agents=[("random", {"colour": 1})]), tmp_path / "b",
                 progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="unknown grid setting"):
        GridSpec.from_dict({"scenarios": ["stationary"], "agents": ["random"], "seedz": [1]})


# ------------------------------------------------------------------ serial runs and the store
def test_serial_grid_writes_every_cell_and_resumes(tmp_path):
    spec = small_spec(seeds=[0, 1])
    run_dir = tmp_path / "run"
    summary = run_grid(spec, run_dir, progress=False)
    ids = [c.cell_id for c in spec.cells()]
    assert summary.ok and sorted(summary.completed) == sorted(ids) and not summary.skipped
    assert store.finished_cells(run_dir) == set(ids)
    assert json.loads((run_dir / "grid.json").read_text()) == spec.to_dict()
    before = {i: stats(store.cell_path(run_dir, i)) for i in ids}

    again = run_grid(spec, run_dir, progress=False)
    assert again.completed == [] and sorted(again.skipped) == sorted(ids)
    assert {i: stats(store.cell_path(run_dir, i)) for i in ids} == before  # not recomputed

    df = load_results(run_dir)
    assert len(df) == 4 * 2 and df["cell_id"].nunique() == 4
    assert (df["node_id"] == "local").all()
    direct = run_cell(spec.cells()[0])
    got = df[df["cell_id"] == ids[0]].drop(columns=list(VOLATILE_COLUMNS))
    pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                  direct.drop(columns=list(TIMING_COLUMNS)))
    assert not list(run_dir.rglob(".tmp-*"))


def test_a_different_grid_in_the_same_folder_is_refused(tmp_path):
    run_grid(small_spec(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="different grid"):
        run_grid(small_spec(seeds=[7]), tmp_path, progress=False)


def test_load_results_only_loads_cells_of_the_grid(tmp_path):
    spec = small_spec(agents=["random"])
    run_grid(spec, tmp_path, progress=False)
    stray = run_cell(small_spec(agents=["oracle"]).cells()[0])
    store.write_cell(tmp_path, "stray-cell", stray)
    assert set(load_results(tmp_path)["agent"]) == {"random"}
    with pytest.raises(FileNotFoundError, match="not a driftrank run folder"):
        load_results(tmp_path / "cells")
    (tmp_path / "cells" / ".tmp-x.parquet.abc").write_text("half a file")
    assert store.remove_stale_temp_files(tmp_path) == 1


def test_prepare_runs_once_per_world_config_and_seed_in_the_driver(tmp_path):
    CALLS["prepare"].clear()
    spec = small_spec(scenarios=["stationary", "gradual"],
                      agents=[("test-prep", {"flavour": 1}), ("test-prep", {"flavour": 2}),
                              "random"], seeds=[0, 1])
    summary = run_grid(spec, tmp_path, progress=False)
    assert summary.ok and len(summary.completed) == 12
    # once per (world config, seed) and per value of the config keys prepare() accepts
    got = sorted((c.world.scenario, c.seed, f) for c, f in CALLS["prepare"])
    assert got == [(s, seed, f) for s in ("gradual", "stationary") for seed in (0, 1)
                   for f in (1, 2)]
    cells = {(c.scenario, c.seed): c for c in spec.cells() if c.agent == "test-prep"}
    for ctx, _ in CALLS["prepare"]:  # the very config the cell's env runs (cache key)
        assert ctx.world == cells[(ctx.world.scenario, ctx.seed)].world_config()
        assert ctx.cache_dir.is_absolute()
    CALLS["prepare"].clear()
    run_grid(spec, tmp_path, progress=False)
    assert CALLS["prepare"] == []  # nothing left to run, nothing to prepare


def test_failing_cell_is_retried_then_reported_others_finish(tmp_path):
    CALLS["boom"] = 0
    spec = small_spec(agents=["random", "test-boom"], seeds=[0])
    summary = run_grid(spec, tmp_path, retries=2, progress=False)
    assert CALLS["boom"] == 3  # 1 + 2 retries
    assert len(summary.completed) == 1 and not summary.ok
    (failure,) = summary.failed
    boom_id = [c.cell_id for c in spec.cells() if c.agent == "test-boom"][0]
    assert failure["cell_id"] == boom_id and failure["attempts"] == 3
    assert "boom: this agent always fails" in failure["error"]
    record = json.loads(store.failed_path(tmp_path, boom_id).read_text())
    assert "Traceback" in record["traceback"] and "RuntimeError" in record["traceback"]
    assert record["cell"] == spec.cells()[1].to_dict()
    assert "FAILED" in str(summary) and boom_id in str(summary)
    assert [f["cell_id"] for f in store.load_failures(tmp_path)] == [boom_id]

    CALLS["boom"] = 0  # a re-run retries failed cells, skips finished ones
    again = run_grid(spec, tmp_path, retries=0, progress=False)
    assert CALLS["boom"] == 1 and len(again.skipped) == 1 and len(again.failed) == 1


def test_grid_raises_only_when_every_cell_failed(tmp_path):
    with pytest.raises(GridError, match="every cell failed") as info:
        run_grid(small_spec(agents=["test-boom"], seeds=[0, 1]), tmp_path, retries=0,
                 progress=False)
    assert len(info.value.summary.failed) == 2
    assert len(list((tmp_path / "failed").glob("*.json"))) == 2


def test_failed_prepare_fails_its_cells_only(tmp_path):
    spec = small_spec(agents=["random", "test-bad-prep"])
    summary = run_grid(spec, tmp_path, progress=False)
    assert len(summary.completed) == 1
    (failure,) = summary.failed
    assert failure["stage"] == "prepare" and "no checkpoint for you" in failure["error"]


KILL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from driftrank.agents import BaseAgent, register_agent
    from driftrank.experiments.grid import GridSpec, run_grid

    @register_agent("hang", "blocks in its first act() until stdin is closed")
    class Hang(BaseAgent):
        def act(self, obs):
            sys.stdin.read()
            return np.tile(np.arange(10), (obs["candidate_ids"].shape[0], 1))

    spec = GridSpec(scenarios=["stationary"], agents=["random", "hang"], seeds=[0, 1],
                    requests=400, batch=100, window=200, world={WORLD})
    run_grid(spec, sys.argv[1], launcher="serial", progress=False)
""").replace("{WORLD}", repr(WORLD))


def test_kill_minus_9_then_rerun_finishes_each_cell_exactly_once(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(KILL_SCRIPT)
    run_dir = tmp_path / "run"
    spec = GridSpec(scenarios=["stationary"], agents=["random", "hang"], seeds=[0, 1],
                    requests=400, batch=100, window=200, world=dict(WORLD))
    ids = [c.cell_id for c in spec.cells()]  # random s0, random s1, hang s0, hang s1
    log = open(tmp_path / "driver.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)],
                            stdin=subprocess.PIPE, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(store.finished_cells(run_dir)) < 2:  # the random cells; then it hangs
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()
            assert time.monotonic() < deadline, "driver never wrote its first cells"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        log.close()
    assert store.finished_cells(run_dir) == set(ids[:2])
    before = {i: stats(store.cell_path(run_dir, i)) for i in ids[:2]}

    done = subprocess.run([sys.executable, str(script), str(run_dir)],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()
    assert store.finished_cells(run_dir) == set(ids)
    assert sorted(p.name for p in (run_dir / "cells").iterdir()) == sorted(
        f"{i}.parquet" for i in ids)  # exactly once each, no temp files
    assert {i: stats(store.cell_path(run_dir, i)) for i in ids[:2]} == before
    df = load_results(run_dir)
    assert len(df) == 4 * 2 and not df.duplicated(["cell_id", "window"]).any()


# ------------------------------------------------------------------ Ray
def test_ray_task_options():
    opts = ray_task_options(0.5, {"env_vars": {"A": "1"}}, started_here=False,
                            ray_options={"resources": {"x": 1}})
    assert opts == {"num_cpus": 0.5, "max_retries": 0, "retry_exceptions": False,
                    "runtime_env": {"env_vars": {"A": "1"}}, "resources": {"x": 1}}
    assert "runtime_env" not in ray_task_options(1, {"env_vars": {}}, True, {})
    assert set(shipped_factories(["random", "test-boom"])) == {"test-boom"}
    with pytest.raises(ValueError, match="launcher='ray'"):
        run_grid(small_spec(), "unused", address="auto")
    with pytest.raises(ValueError, match="launcher='nope'"):
        run_grid(small_spec(), "unused", launcher="nope")


def test_ray_results_equal_serial_results(ray_session, tmp_path):
    spec = small_spec(seeds=[0, 1])
    run_grid(spec, tmp_path / "serial", progress=False)
    summary = run_grid(spec, tmp_path / "ray", launcher="ray", num_cpus_per_cell=0.5,
                       progress=False)
    assert summary.ok and len(summary.completed) == 4
    serial = load_results(tmp_path / "serial")
    on_ray = load_results(tmp_path / "ray")
    assert (on_ray["node_id"] != "local").all()
    pd.testing.assert_frame_equal(serial.drop(columns=list(VOLATILE_COLUMNS)),
                                  on_ray.drop(columns=list(VOLATILE_COLUMNS)))


def test_ray_failing_cell_is_retried_then_reported(ray_session, tmp_path):
    spec = small_spec(agents=["random", "test-boom"])
    summary = run_grid(spec, tmp_path, launcher="ray", retries=1, num_cpus_per_cell=0.5,
                       progress=False)
    assert len(summary.completed) == 1
    (failure,) = summary.failed
    assert failure["attempts"] == 2 and failure["launcher"] == "ray"
    assert all("boom: this agent always fails" in e for e in failure["errors"])
    assert "boom" in json.loads(store.failed_path(tmp_path, failure["cell_id"]).read_text())[
        "traceback"]


def test_ray_grid_runs_cells_on_both_nodes(ray_cluster, tmp_path):
    names = sorted(ray_cluster.node_of_resource)
    assert len(names) == 2 and len(set(ray_cluster.node_of_resource.values())) == 2
    spec = small_spec(agents=["random"], seeds=[0, 1, 2, 3])
    summary = run_grid(spec, tmp_path, launcher="ray", num_cpus_per_cell=0.5, progress=False,
                       ray_options=lambda c: {"resources": {names[c.seed % 2]: 0.01}})
    assert summary.ok
    df = load_results(tmp_path)
    where = df.groupby("seed")["node_id"].unique()
    for seed, nodes in where.items():
        assert list(nodes) == [ray_cluster.node_of_resource[names[seed % 2]]]
    assert df["node_id"].nunique() == 2


# ------------------------------------------------------------------ faults, retries, progress
FLAKY: dict[str, int] = {}


@register_agent("test-flaky", "fails its first attempt, then works (tests only)")
class FlakyAgent(BaseAgent):
    name = "test-flaky"

    def __init__(self, context, key: str = "x"):
        super().__init__(context)
        FLAKY[key] = FLAKY.get(key, 0) + 1
        if FLAKY[key] == 1:
            raise ConnectionError("worker lost (first attempt only)")

    def act(self, obs):
        b = obs["candidate_ids"].shape[0]
        return np.tile(np.arange(self.context.slate_size), (b, 1))


@register_agent("test-nan-slates", "returns NaN in its slates (tests only)")
class NanAgent(BaseAgent):
    name = "test-nan-slates"

    def act(self, obs):
        slates = np.tile(np.arange(self.context.slate_size, dtype=float),
                         (obs["candidate_ids"].shape[0], 1))
        slates[4, 1] = np.nan
        return slates


def test_a_retried_cell_is_named_in_the_summary(tmp_path):
    FLAKY.clear()
    spec = small_spec(agents=["random", ("test-flaky", {"key": "grid"})])
    summary = run_grid(spec, tmp_path, retries=1, progress=False)
    assert summary.ok and len(summary.completed) == 2
    (retried,) = summary.retried
    assert retried["attempts"] == 2 and "worker lost" in retried["errors"][0]
    assert f"RETRIED {retried['cell_id']}" in str(summary)
    assert "ConnectionError: worker lost" in str(summary)


def test_an_agent_breaking_the_slate_contract_fails_its_cells_only(tmp_path):
    spec = small_spec(agents=["random", "test-nan-slates"])
    summary = run_grid(spec, tmp_path, retries=0, progress=False)
    (failure,) = summary.failed
    assert "agent 'test-nan-slates'" in failure["error"] and "step 0" in failure["error"]
    assert "row 4" in failure["error"] and "integer array" in failure["error"]
    assert set(load_results(tmp_path)["agent"]) == {"random"}  # the finished cell is kept


def test_the_eta_comes_from_finished_cells_only(monkeypatch):
    from driftrank.experiments import progress

    clock = iter([100.0, 160.0, 220.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with progress.CellProgress(total=4, enabled=False, desc="cells") as bar:
        assert bar.eta_s() is None  # nothing finished: no promise
        bar.finished()
        assert bar.eta_s() == pytest.approx(120 / 1 * 3)  # 2 min for one cell, 3 to go


def test_the_eta_weighs_the_cells_left_by_their_kind():
    """Cheap cells finishing first must not promise a short wait for the costly ones."""
    from driftrank.experiments import progress

    kinds = ["oracle"] * 2 + ["last"] * 3 + ["drn"]
    with progress.CellProgress(total=6, enabled=False, desc="cells", kinds=kinds,
                               slots=2) as bar:
        bar.finished(kind="oracle", seconds=2.0)
        bar.finished(kind="oracle", seconds=2.0)
        # only oracles seen: the unseen kinds count as the slowest seen (2 s), 2 slots
        assert bar.eta_s() == pytest.approx(4 * 2.0 / 2) and bar.unseen_kinds()
        assert bar.bar.postfix == "eta >00:04"  # a lower bound until every kind has finished
        bar.finished(kind="last", seconds=60.0)
        # left: 2 last at 60 s and 1 drn counted as the slowest kind (60 s), over 2 slots
        assert bar.eta_s() == pytest.approx(3 * 60.0 / 2)
        bar.finished(kind="drn", seconds=10.0)
        assert bar.eta_s() == pytest.approx(2 * 60.0 / 2) and not bar.unseen_kinds()
        assert bar.bar.postfix == "eta 01:00"
        bar.finished(kind="last", seconds=50.0)
        # one cell left: never less than that cell, whatever the slots
        assert bar.eta_s() == pytest.approx(55.0)
    with pytest.raises(ValueError, match="kinds has 1 entries for 2 items"):
        progress.CellProgress(total=2, enabled=False, desc="cells", kinds=["x"])


def test_cells_report_their_wall_time_to_the_progress_bar(tmp_path, monkeypatch):
    from driftrank.experiments import launch

    seen = []
    monkeypatch.setattr(launch.CellProgress, "finished",
                        lambda self, failed=False, kind=None, seconds=None:
                        seen.append((kind, seconds)))
    spec = small_spec(agents=["random"], seeds=[0, 1])
    run_grid(spec, tmp_path, progress=False)
    cells = [(k, s) for k, s in seen if k is not None]  # the preparation bar has no kinds
    assert [k for k, _ in cells] == ["random", "random"]
    assert all(s is not None and s > 0 for _, s in cells)
    assert "cell_wall_s" not in load_results(tmp_path).columns


def test_grid_spec_and_cell_share_length_and_serialisation():
    spec = small_spec(strict=False)
    assert all(not c.strict for c in spec.cells())
    assert spec.to_dict()["strict"] is False and "strict" not in small_spec().to_dict()
    assert GridSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown grid setting"):
        GridSpec.from_dict({**spec.to_dict(), "seedz": [1]})
