"""The report: table, plots, recovery after shifts, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from driftrank.experiments import store
from driftrank.experiments.grid import GridSpec, run_grid
from driftrank.experiments.report import mean_ci, recovery, write_report

WORLD = {"n_users": 300, "n_items": 200}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    spec = GridSpec(scenarios=["stationary", "abrupt-shift"], agents=["random", "oracle"],
                    seeds=[0, 1], requests=2000, batch=100, window=500, world=dict(WORLD),
                    scenario_world={"abrupt-shift": {"abrupt_times": [1000]}})
    run_grid(spec, run_dir, progress=False)
    return run_dir


def test_report_has_table_plots_recovery_and_pairs(tiny_run):
    path = write_report(tiny_run)
    assert path == tiny_run / "report.md"
    text = path.read_text()
    assert "## Summary" in text and "### stationary" in text and "### abrupt-shift" in text
    assert "| agent | reward/req | CTR | regret/req | act p50 ms | act p99 ms | seeds |" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| random |")]
    assert len(table_rows) == 2 and all(line.endswith("| 2 |") for line in table_rows)
    assert "[" in table_rows[0]  # a 95% interval over the 2 seeds
    for scenario in ("stationary", "abrupt-shift"):
        png = tiny_run / f"reward_{scenario}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"]({png.name})" in text
    assert "## Recovery after abrupt shifts" in text
    assert "| abrupt-shift | 1,000 | oracle |" in text
    # no `static` in the grid: paired against the first agent, and it says so
    assert "## Paired differences vs `random`" in text
    assert "`static` is not in this grid" in text
    assert "| stationary | oracle |" in text


def _fake_cell(run_dir, label, seed, rewards, regrets, events=None, scenario="s"):
    n = len(rewards)
    df = pd.DataFrame({
        "cell_id": f"{scenario}.{label}.{seed}", "scenario": scenario, "agent": label,
        "label": label, "seed": seed, "window": np.arange(n), "tick_start": np.arange(n) * 100,
        "tick_end": np.arange(1, n + 1) * 100, "requests": 100,
        "reward_per_request": rewards, "ctr": np.asarray(rewards) / 10,
        "conversions_per_request": 0.0, "expected_reward": rewards,
        "reference_reward": np.asarray(rewards) + np.asarray(regrets),
        "regret_per_request": regrets, "drift_events": events or [""] * n,
        "act_p50_ms": 1.0, "act_p99_ms": 2.0, "requests_per_s": 1e4, "node_id": "local",
    })
    store.write_cell(run_dir, f"{scenario}.{label}.{seed}", df)


def test_pairs_against_static_and_reports_failures(tmp_path):
    events = ["", "abrupt@100", "", ""]
    for seed in (0, 1, 2):
        _fake_cell(tmp_path, "fancy", seed, [2.0, 2.0, 2.0, 2.0], [0.5, 0.9, 0.6, 0.51],
                   events)
        _fake_cell(tmp_path, "static", seed, [1.0 + seed, 1.0 + seed, 1.0 + seed, 1.0 + seed],
                   [0.5, 0.9, 0.9, 0.9], events)
    store.write_failure(tmp_path, "s.broken.0", {"cell_id": "s.broken.0", "label": "broken",
                                                "attempts": 2, "error": "ValueError: bad"})
    text = write_report(tmp_path).read_text()
    assert "## Paired differences vs `static`" in text and "is not in this grid" not in text
    # fancy - static per seed: reward 1, 0, -1 -> mean 0; regret diff is the same every seed
    row = [line for line in text.splitlines() if line.startswith("| s | fancy |")][-1]
    assert row.split("|")[3].strip().startswith("0.0000 [")
    assert "| s | 100 | fancy | 300 [300, 300] | 3/3 |" in text
    assert "| s | 100 | static | not recovered | 0/3 |" in text
    assert "s.broken.0" in text and "ValueError: bad" in text


def test_recovery_definition():
    w = pd.DataFrame({"window": range(6), "tick_start": [0, 100, 200, 300, 400, 500],
                      "tick_end": [100, 200, 300, 400, 500, 600], "requests": 100,
                      "regret_per_request": [1.0, 1.0, 3.0, 2.0, 1.04, 1.0]})
    assert recovery(w, 200) == 300  # back within 5% of 1.0 at the end of window 4
    assert recovery(w, 200, next_shift=400) is None  # not before the next shift
    assert math.isnan(recovery(w, 0))  # no window before the shift


def test_mean_ci():
    m, lo, hi, n = mean_ci([1.0, 2.0, 3.0])
    assert (m, n) == (2.0, 3)
    assert hi - m == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    m, lo, hi, n = mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo) and n == 1


def test_report_of_an_empty_or_missing_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a driftrank run folder"):
        write_report(tmp_path)


def test_short_labels_keep_only_what_differs():
    from driftrank.experiments.report import short_labels
    from driftrank.experiments.runner import agent_label

    agents = [{"name": "static", "config": {"pretrain_config": {"epochs": 1}}},
              {"name": "last", "config": {"steps": 1, "pretrain_config": {"epochs": 1}}},
              {"name": "last", "config": {"steps": 2, "pretrain_config": {"epochs": 1}}},
              {"name": "random", "config": {}}]
    short = short_labels({"agents": agents})
    assert [short[agent_label(a["name"], a["config"])] for a in agents] == [
        "static", "last(steps=1)", "last(steps=2)", "random"]
