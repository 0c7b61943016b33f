"""The study pipeline: verdicts follow the numbers, absent agents say so, the run resumes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftrank.experiments import study as st
from driftrank.experiments.study_claims import (
    CLAIMS,
    NOT_REPRODUCED,
    REPRODUCED,
    REVERSED,
    Claim,
    StudyData,
    evaluate,
    paired_difference,
)
from driftrank.experiments.study_probe import load_probes
from driftrank.experiments.study_report import (
    event_response,
    makespan,
    timing_text,
    write_study,
)

SEEDS = [0, 1, 2, 3, 4]
EVENT = 200


def _windows(key: str, seed: int, post: float, pre: float = 1.0) -> list[dict]:
    """Three windows of 100 requests; the event fires at tick 200 (start of window 2)."""
    rows = []
    for w in range(3):
        rows.append({"variant": "history", "scenario": "s", "key": key, "seed": seed,
                     "window": w, "tick_start": 100 * w, "tick_end": 100 * (w + 1),
                     "requests": 100, "drift_events": f"abrupt@{EVENT}" if w == 2 else "",
                     "expected_reward": pre if w < 2 else post,
                     "act_p50_ms": 1.0, "requests_per_s": 1000.0, "cell_id": f"{key}{seed}"})
    return rows


def _data(roles=None) -> StudyData:
    noise = np.array([0.03, -0.02, 0.01, -0.03, 0.01])  # mean 0
    rows = []
    for i, seed in enumerate(SEEDS):
        base = 1.0 + 0.1 * i  # seeds differ a lot; pairing must cancel it
        rows += _windows("static", seed, base)
        rows += _windows("up", seed, base + 0.5 + noise[i])
        rows += _windows("down", seed, base - 0.5 + noise[i])
        # same as static after the event, far ahead before it: only a phase bug would see it
        rows += _windows("null", seed, base + noise[i], pre=9.0)
        rows += _windows("oracle", seed, base + 2.0)
        rows += _windows("stale-oracle", seed, base + 1.0)
    empty = pd.DataFrame()
    return StudyData(grid=pd.DataFrame(rows), evaluator=empty, search=empty,
                     roles=roles or {"r": ["s"]}, columns={})


def _claim(treatment, control="static", **kw) -> Claim:
    return Claim("T", "paper", "says", ("r",), treatment, control, **kw)


def test_verdicts_follow_the_paired_numbers():
    data = _data()
    rows = evaluate(data, [_claim("up"), _claim("down"), _claim("null"),
                           _claim("down", lower_is_better=True)])
    assert [r["verdict"] for r in rows] == [REPRODUCED, REVERSED, NOT_REPRODUCED, REPRODUCED]
    up = rows[0]
    assert up["mean"] == pytest.approx(0.5)
    # the interval is the t-interval of the per-seed differences, which are 0.5 + noise
    diffs = 0.5 + np.array([0.03, -0.02, 0.01, -0.03, 0.01])
    half = 2.776 * diffs.std(ddof=1) / np.sqrt(5)
    assert (up["lo"], up["hi"]) == pytest.approx((0.5 - half, 0.5 + half))
    assert up["n"] == 5
    # the note is computed from the data: share of the headroom (oracle - stale-oracle = 1)
    assert "50% of the headroom" in up["note"]
    assert rows[1]["note"].startswith("static ahead by 0.5")
    assert "within noise" in rows[2]["note"]


def test_pairing_is_by_seed():
    treat = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    control = pd.Series([0.9, 1.9, 2.9, 100.0], index=[0, 1, 2, 3])
    d = paired_difference(treat, control)
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.1)
    assert d["hi"] - d["lo"] == pytest.approx(0.0, abs=1e-9)  # identical differences


def test_missing_pieces_say_not_run_and_what_is_needed():
    data = _data(roles={"r": ["s"], "other": ["nowhere"]})
    rows = evaluate(data, [
        _claim("absent"),
        Claim("T", "p", "x", ("other",), "up", "static"),
        Claim("T", "p", "x", ("no-role",), "up", "static"),
        _claim("up", metric="return_rate"),
        Claim("T", "p", "x", ("r",), "memory", "base", "auc", source="evaluator"),
        _claim("up", contrast_variant="taste"),
    ])
    needs = [r["verdict"] for r in rows]
    assert needs == [
        "not run (needs absent on s)",
        "not run (needs results for scenario nowhere)",
        "not run (needs a scenario for role no-role)",
        "not run (needs a 'return_rate' column in the results)",
        "not run (needs the evaluator probe's results)",
        "not run (needs results for scenario s (taste world))",
    ]
    assert all(r["measured"] == "-" and np.isnan(r["mean"]) for r in rows)


def test_event_response_measures_from_the_tick():
    cell = pd.DataFrame({"tick_start": [0, 100, 200, 300, 400, 500],
                         "tick_end": [100, 200, 300, 400, 500, 600],
                         "requests": [100] * 6,
                         "expected_reward": [2.0, 2.0, 1.0, 1.5, 1.95, 2.0]})
    r = event_response(cell, 200, np.inf)
    assert r["drop"] == pytest.approx(1.0)
    assert r["t90"] == 300  # 1.95 >= 1.0 + 0.9 * 1.0 at the window ending at 500
    flat = cell.assign(expected_reward=2.0)
    assert np.isnan(event_response(flat, 200, np.inf)["t90"])  # no drop: nothing to recover
    never = cell.assign(expected_reward=[2.0, 2.0, 1.0, 1.1, 1.2, 1.3])
    assert event_response(never, 200, np.inf)["t90"] is None


def test_makespan_schedules_longest_first():
    assert makespan([4, 3, 3, 2], 2) == 6
    assert makespan([5, 1, 1], 8) == 5


def test_default_study_is_consistent_and_quick_keeps_its_names():
    st.check_config(st.STUDY)
    assert len(st.STUDY["seeds"]) >= 5
    quick = st.quick_config()
    st.check_config(quick)
    assert quick["agents"].keys() == st.STUDY["agents"].keys()
    assert quick["requests"] < st.STUDY["requests"]
    bad = {**st.STUDY, "blocks": st.STUDY["blocks"] + [
        {"name": "again", "scenarios": ["taste-shift"], "agents": ["static"]}]}
    with pytest.raises(ValueError, match="run twice"):
        st.check_config(bad)


TINY = dict(n_requests=800, evaluator_epochs=1, imitation_epochs=1, pg_steps=3,
            eval_requests=50)
MODEL = {"pretrain_config": TINY}


def _tiny_config() -> dict:
    return {
        "version": "test", "seeds": [0, 1], "requests": 800, "batch": 100, "window": 200,
        "world": {"n_users": 300, "n_items": 300},
        "scenario_world": {"abrupt-shift": {"abrupt_times": [400]}},
        "variants": {"history": {}, "taste": {"no_such_setting": 1}},
        "roles": {"taste": ["abrupt-shift"], "item": ["abrupt-shift"], "cold": [],
                  "delayed": ["no-such-scenario"], "returns": ["abrupt-shift"]},
        "agents": {
            "oracle": {"name": "oracle"},
            "stale-oracle": {"name": "random"},
            "static": {"name": "static", "config": MODEL},
            "last": {"name": "last", "config": {**MODEL, "steps": [6.0], "resamples": 1}},
            "best-of-n": {"name": "no-such-agent", "config": MODEL},
        },
        "blocks": [
            {"name": "core", "variant": "history",
             "scenarios": ["abrupt-shift", "no-such-scenario"],
             "agents": ["oracle", "stale-oracle", "static", "last", "best-of-n"]},
            {"name": "control", "variant": "taste", "scenarios": ["abrupt-shift"],
             "agents": ["static"]},
        ],
        "probes": {
            "evaluator": {"scenarios": ["abrupt-shift"], "period": 400, "pretrain_config": TINY,
                          "memory": {}},
            "search": {"scenarios": ["abrupt-shift"], "agents": ["static", "last", "best-of-n"],
                       "requests": 400},
        },
        "columns": {"return_rate": "return_rate"},
    }


def test_study_end_to_end_fills_rows_from_data_and_resumes(tmp_path, monkeypatch):
    out, cache = tmp_path / "study", tmp_path / "cache"
    config = _tiny_config()
    state = st.run_study(out, config=config, progress=False, cache_dir=cache, log=lambda m: None)
    assert state["blocks"]["core"]["missing"] == ["scenario no-such-scenario",
                                                  "agent no-such-agent"]
    assert state["blocks"]["control"]["cells"] == 0  # the world setting does not exist here
    assert not state["probes"]["failed"]
    assert 0 < state["models"]["history/abrupt-shift"]["evaluator_auc"] < 1
    doc = write_study(out, tmp_path / "doc" / "study.md")
    text = doc.read_text()
    assert (tmp_path / "doc" / "study_history_abrupt-shift.png").is_file()
    assert "## Offline models" in text and "history/abrupt-shift" in text

    grid, _ = st.load_study(out)
    probes = load_probes(out / st.PROBES)
    data = StudyData(grid=grid, evaluator=probes["evaluator"], search=probes["search"],
                     roles=config["roles"], columns=config["columns"])
    rows = evaluate(data, CLAIMS)
    claim_of = {c.id: c for c in CLAIMS}
    have = {"grid": {"oracle", "stale-oracle", "static", "last"},  # best-of-n is absent here
            "evaluator": {"base", "memory", "incremental", "incremental+memory"},
            "search": {"static", "last"}}
    for r in rows:
        claim = claim_of[r["id"]]
        runnable = (r["treatment"] in have[claim.source] and r["control"] in have[claim.source]
                    and r["scenario"] == "abrupt-shift" and claim.metric != "return_rate"
                    and claim.contrast_variant is None)  # the taste world did not run
        if runnable:
            assert r["verdict"] in (REPRODUCED, NOT_REPRODUCED, REVERSED), r
            assert r["n"] == 2 and np.isfinite(r["mean"])
            assert f"| {r['id']} |" in text
        else:
            assert r["verdict"].startswith("not run (needs "), r
    assert sum(r["verdict"].startswith("not run") for r in rows) < len(rows)
    # one claim recomputed by hand from the stored cells: last - static in truth after the shift
    l3 = next(r for r in rows if r["id"] == "L.3" and r["scenario"] == "abrupt-shift")
    post = grid[grid["tick_start"] >= 400]
    per = post.groupby(["key", "seed"])["expected_reward"].mean()  # equal-size windows
    assert l3["mean"] == pytest.approx((per["last"] - per["static"]).mean())

    # re-running resumes: nothing is computed again
    import driftrank.experiments.launch as grid_module
    import driftrank.experiments.study_probe as probe_module

    def boom(*a, **k):
        raise AssertionError("a finished cell or probe ran again")

    monkeypatch.setattr(grid_module, "run_cell", boom)
    monkeypatch.setattr(probe_module, "evaluator_probe", boom)
    monkeypatch.setattr(probe_module, "search_probe", boom)
    again = st.run_study(out, config=config, progress=False, cache_dir=cache,
                         log=lambda m: None)
    assert len(again["runs"]) == 2 and again["runs"][-1]["failed_cells"] == 0
    assert all(r["finished"] for r in again["runs"])
    # the probes ran in the first invocation: their measured seconds survive the resume
    assert state["probes"]["seconds"] and again["probes"]["seconds"] == state["probes"]["seconds"]
    timing = timing_text(data, again)
    probe_min = sum(state["probes"]["seconds"].values()) / 60
    assert f"the probes {probe_min:.1f} min" in timing[0]
    wall = sum(r["wall_s"] for r in again["runs"]) / 60
    assert f"{wall:.1f} min over 2 invocation(s) (launchers" in timing[0]

    # the CLI writes the same document from the stored results
    from driftrank.experiments.cli import main

    assert main(["study", "--out", str(out), "--report-only", "--doc",
                 str(tmp_path / "cli.md")]) == 0
    claims_of = [line for line in (tmp_path / "cli.md").read_text().splitlines()
                 if line.startswith("| R2.") or line.startswith("| L.")]
    assert claims_of == [line for line in text.splitlines()
                         if line.startswith("| R2.") or line.startswith("| L.")]
    with pytest.raises(ValueError, match="different settings"):
        st.run_study(out, config={**config, "seeds": [0, 1, 2]}, progress=False,
                     cache_dir=cache, log=lambda m: None)


def test_an_interrupted_study_keeps_its_wall_time(tmp_path, monkeypatch):
    """A study stopped mid-way still counts the time it ran, marked as interrupted."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(st, "run_grid", interrupted)
    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        st.run_study(out, config=_tiny_config(), progress=False, cache_dir=tmp_path / "cache",
                     log=lambda m: None)
    state = st._read_state(out)
    (run,) = state["runs"]
    assert run["finished"] is False and run["wall_s"] > 0
    empty = StudyData(grid=pd.DataFrame(), evaluator=pd.DataFrame(), search=pd.DataFrame(),
                      roles={}, columns={})
    assert "1 of them interrupted" in timing_text(empty, state)[0]


def test_probes_interrupted_midway_keep_the_finished_ones_and_their_seconds(tmp_path,
                                                                           monkeypatch):
    """A probe's compute seconds travel in its own file: a study stopped after one probe and
    resumed reports that probe's measured seconds, and does not run it again."""
    import driftrank.experiments.study_probe as probe_module

    config = _tiny_config()
    jobs = probe_module._probe_jobs(config)
    assert len(jobs) >= 2
    calls = []

    def fake(probe, scenario, seed, kwargs, cache_dir):
        calls.append((probe, scenario, seed))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second probe
        return pd.DataFrame({"seed": [seed], "probe": [probe]})

    monkeypatch.setattr(probe_module, "_run_one", fake)
    folder = tmp_path / "probes"
    with pytest.raises(KeyboardInterrupt):
        probe_module.run_probes(config, folder, progress=False, log=lambda m: None)
    (first,) = [p.name for p in folder.glob("*.parquet")]
    stored = probe_module.probe_seconds(folder, [first])[first]
    assert stored > 0

    state = probe_module.run_probes(config, folder, progress=False, log=lambda m: None)
    assert len(calls) == 2 + len(jobs) - 1  # the finished probe did not run again
    assert set(state["seconds"]) == set(state["files"]) and len(state["files"]) == len(jobs)
    assert state["seconds"][first] == stored


def test_study_on_ray_matches_serial(tmp_path, ray_session):
    """Cells and probes as Ray tasks (the shared test session): same numbers as in-process."""
    from driftrank.experiments.runner import VOLATILE_COLUMNS
    from driftrank.experiments.study_probe import search_probe

    config = {
        "version": "ray-test", "seeds": [0, 1], "requests": 400, "batch": 100, "window": 200,
        "world": {"n_users": 300, "n_items": 300}, "scenario_world": {},
        "roles": {"taste": ["stationary"]},
        "agents": {"oracle": {"name": "oracle"}, "random": {"name": "random"}},
        "blocks": [{"name": "core", "scenarios": ["stationary"],
                    "agents": ["oracle", "random"]}],
        "probes": {"search": {"scenarios": ["stationary"], "agents": ["oracle", "random"],
                              "requests": 200, "pretrain_config": TINY}},
    }
    out, cache = tmp_path / "study", tmp_path / "cache"
    state = st.run_study(out, config=config, launcher="ray", progress=False, cache_dir=cache,
                         log=lambda m: None)
    assert state["runs"][-1]["failed_cells"] == 0 and not state["probes"]["failed"]
    grid, _ = st.load_study(out)
    assert set(grid["key"]) == {"oracle", "random"} and set(grid["seed"]) == {0, 1}
    assert set(grid["node_id"]) != {"local"}  # really ran on Ray workers
    probe = load_probes(out / st.PROBES)["search"]
    local = search_probe("stationary", 1, {"oracle": ("oracle", {}), "random": ("random", {})},
                         world=config["world"], requests=200, batch=100, window=200,
                         pretrain_config=TINY, cache_dir=cache)
    got = probe[probe["seed"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, local)
    serial = st.run_study(tmp_path / "serial", config=config, progress=False, cache_dir=cache,
                          log=lambda m: None)
    assert serial["runs"][-1]["failed_cells"] == 0
    other, _ = st.load_study(tmp_path / "serial")
    drop = [*VOLATILE_COLUMNS]
    pd.testing.assert_frame_equal(grid.drop(columns=drop), other.drop(columns=drop))
