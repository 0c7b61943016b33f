"""The report: table, plots, recovery after shifts, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from driftrank.experiments import store
from driftrank.experiments.grid import GridSpec, run_grid
from driftrank.experiments.report import write_report
from driftrank.experiments.results import load_results
from driftrank.experiments.statistics import mean_ci, recovery

WORLD = {"n_users": 300, "n_items": 200}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    spec = GridSpec(scenarios=["stationary", "abrupt-shift"], agents=["random", "oracle"],
                    seeds=[0, 1], requests=2000, batch=100, window=500, world=dict(WORLD),
                    scenario_world={"abrupt-shift": {"abrupt_times": [1250]}})
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
    # the shift at 1,250 is mid-window (windows of 500): oracle has nothing to recover from
    oracle = [line for line in text.splitlines() if line.startswith("| abrupt-shift | 1,250 |")
              and "| oracle |" in line]
    assert len(oracle) == 1 and oracle[0].endswith("| no drop | 0/2 | 0/0 |")
    # no `static` in the grid: paired against the first agent, and it says so
    assert "## Paired differences vs `random`" in text
    assert "`static` is not in this grid" in text
    assert "| stationary | oracle |" in text


def _fake_cell(run_dir, label, seed, rewards, regrets, events=None, scenario="s",
               requests=None, agent=None):
    n = len(rewards)
    requests = np.full(n, 100) if requests is None else np.asarray(requests)
    ends = np.cumsum(requests)
    df = pd.DataFrame({
        "cell_id": f"{scenario}.{label}.{seed}", "scenario": scenario, "agent": agent or label,
        "label": label, "seed": seed, "window": np.arange(n), "tick_start": ends - requests,
        "tick_end": ends, "requests": requests,
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
    text = write_report(tmp_path, plots=False).read_text()
    assert "## Paired differences vs `static`" in text and "is not in this grid" not in text
    # fancy - static per seed: reward 1, 0, -1 -> mean 0; regret diff is the same every seed
    row = [line for line in text.splitlines() if line.startswith("| s | fancy |")][-1]
    assert row.split("|")[3].strip().startswith("0.0000 [")
    assert "| s | 100 | fancy | 0.500 [0.500, 0.500] | 0.900 [0.900, 0.900] | 300 [300, 300] " \
        "| 3/3 | 3/3 |" in text
    assert "| s | 100 | static | 0.500 [0.500, 0.500] | 0.900 [0.900, 0.900] | not recovered " \
        "| 3/3 | 0/3 |" in text
    assert "s.broken.0" in text and "ValueError: bad" in text


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


# ------------------------------------------------------------------ hand-computed rows
def _windows(regrets, size=100, requests=None):
    n = len(regrets)
    req = np.full(n, size) if requests is None else np.asarray(requests)
    ends = np.cumsum(req)
    return pd.DataFrame({"window": np.arange(n), "tick_start": ends - req, "tick_end": ends,
                         "requests": req, "regret_per_request": regrets})


def test_recovery_is_measured_from_the_shift_tick():
    # shift at 350, inside window 3 [300, 400): that window belongs to neither side
    w = _windows([0.5, 0.5, 0.5, 0.7, 0.9, 0.6, 0.51, 0.5])
    r = recovery(w, 350)
    assert r.status == "recovered" and r.requests == 700 - 350  # window 6 ends at 700
    assert r.baseline == pytest.approx(0.5) and r.after == pytest.approx(0.9)
    assert recovery(w, 350, next_shift=600).status == "not recovered"
    assert recovery(w, 50).status == "no baseline"  # no window ends before the shift
    # a spike in the mixed window only: the first window wholly after is back, no drop
    assert recovery(_windows([0.0, 0.0, 0.0, 0.3, 0.0, 0.0]), 350).status == "no drop"
    assert recovery(_windows([0.0] * 6), 350).status == "no drop"


def test_recovery_tolerance_is_relative():
    # baseline 2.0: +4% is within 5% (an absolute 0.05 would call it a drop)
    assert recovery(_windows([2.0, 2.0, 2.0, 2.08, 2.08]), 300).status == "no drop"
    # baseline 0.5: 0.54 is 8% above, not back (an absolute 0.05 would call it recovered)
    r = recovery(_windows([0.5, 0.5, 0.5, 0.9, 0.54, 0.54]), 300)
    assert r.status == "not recovered"
    assert recovery(_windows([0.5, 0.5, 0.5, 0.9, 0.52]), 300).requests == 200


def test_recovery_baseline_is_the_windows_just_before_the_shift():
    # early windows were worse (1.0); the level just before the shift is 0.5 (last 3 windows)
    w = _windows([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.9, 0.7, 0.7])
    r = recovery(w, 600)
    assert r.baseline == pytest.approx(0.5)  # not the 0.75 of all six pre-shift windows
    assert r.status == "not recovered"
    # the baseline is request-weighted: (0.4 * 300 + 0.8 * 100) / 400 = 0.5
    w = _windows([0.4, 0.8, 0.9, 0.5], requests=[300, 100, 100, 100])
    assert recovery(w, 400).baseline == pytest.approx(0.5)


def _acceptance_run(tmp_path):
    """Shift at 350 with windows of 100: mid-window. oracle has no regret; random a high and
    flat one (its regret moves by under 5%); static drops and never comes back."""
    events = ["", "", "", "abrupt@350", "", "", "", ""]
    for seed in (0, 1, 2):
        _fake_cell(tmp_path, "oracle", seed, [3.0] * 8, [0.0] * 8, events)
        _fake_cell(tmp_path, "random", seed, [1.0] * 8,
                   [2.0, 2.0, 2.0, 2.02, 2.04, 2.01, 2.0, 2.03], events)
        _fake_cell(tmp_path, "static", seed, [2.5] * 3 + [2.2] + [2.0] * 4,
                   [0.5, 0.5, 0.5, 0.8, 1.0, 1.0, 0.9, 0.9], events)
    return write_report(tmp_path, plots=False).read_text()


def test_mid_window_shift_oracle_and_random_do_not_drop_static_does_not_recover(tmp_path):
    text = _acceptance_run(tmp_path)
    rows = {line.split("|")[3].strip(): line for line in text.splitlines()
            if line.startswith("| s | 350 |")}
    assert set(rows) == {"oracle", "random", "static"}
    assert "| no drop | 0/3 | 0/0 |" in rows["oracle"]
    assert "| no drop | 0/3 | 0/0 |" in rows["random"]
    assert "| not recovered | 3/3 | 0/3 |" in rows["static"]


def test_paired_differences_are_agent_minus_baseline_within_each_seed():
    from driftrank.experiments.report import paired_differences

    rows = []
    for seed, base in zip((0, 1, 2), (1.0, 2.0, 4.0), strict=True):
        rows += [("static", seed, base), ("better", seed, base + 0.5),
                 ("worse", seed, base - 0.25)]
    cells = pd.DataFrame(rows, columns=["label", "seed", "reward_per_request"])
    cells["ctr"] = cells["reward_per_request"] / 10
    cells["regret_per_request"] = 5.0 - cells["reward_per_request"]
    cells["scenario"] = "s"
    other = cells.assign(scenario="t", reward_per_request=cells["reward_per_request"] * 3)
    cells = pd.concat([cells, other]).sample(frac=1.0, random_state=3)  # in no order
    rows = paired_differences(cells, ["static", "better", "worse"], ["s", "t"], "static")
    got = {r[1]: r for r in rows if r[0] == "s"}
    assert [r[2] for r in rows if r[0] == "t"] == ["1.5000 [1.5000, 1.5000]",
                                                   "-0.7500 [-0.7500, -0.7500]"]
    # per seed the difference is exactly +0.5 / -0.25: a zero-width interval. Unpaired
    # (or misaligned) seeds would carry the seeds' spread (1, 2, 4) into the interval.
    assert got["better"][2:] == ["0.5000 [0.5000, 0.5000]", "0.0500 [0.0500, 0.0500]",
                                 "-0.5000 [-0.5000, -0.5000]", "3"]
    assert got["worse"][2] == "-0.2500 [-0.2500, -0.2500]"


def test_summary_means_are_weighted_by_requests(tmp_path):
    from driftrank.experiments.report import cell_metrics

    _fake_cell(tmp_path, "static", 0, [1.0, 1.0, 4.0], [0.2, 0.2, 0.8],
               requests=[100, 100, 50])
    df = load_results(tmp_path)
    row = cell_metrics(df).iloc[0]
    assert row["reward_per_request"] == pytest.approx((100 + 100 + 200) / 250)  # not 2.0
    assert row["regret_per_request"] == pytest.approx((20 + 20 + 40) / 250)
    assert row["requests"] == 250
    text = write_report(tmp_path, plots=False).read_text()
    assert "| static | 1.600 | 0.160 | 0.320 |" in text
    assert not list(tmp_path.glob("*.png"))  # plots=False


def test_latency_interval_respects_a_positive_quantity():
    from driftrank.experiments.statistics import log_mean_ci

    m, lo, hi, n = log_mean_ci([1.0, 1.0, 10.0])
    assert n == 3 and m == pytest.approx(10 ** (1 / 3))  # geometric mean
    logs = np.log([1.0, 1.0, 10.0])
    half = 4.303 * logs.std(ddof=1) / math.sqrt(3)
    assert lo == pytest.approx(math.exp(logs.mean() - half)) and lo > 0
    assert hi == pytest.approx(math.exp(logs.mean() + half))
    assert mean_ci([1.0, 1.0, 10.0])[1] < 0  # what a plain t-interval would show


def _headroom_run(tmp_path, with_stale=True):
    """Windows of 100, first drift event at 200. Per seed s, after it oracle beats
    stale-oracle by 1 + 0.1 s; `fancy` beats `static` by 0.5 + 0.1 s, then 0.7 + 0.1 s."""
    events = ["", "", "abrupt@200", ""]
    for seed in (0, 1, 2):
        h = 1.0 + 0.1 * seed
        _fake_cell(tmp_path, "oracle", seed, [3.0 + seed] * 4, [0.0] * 4, events)
        if with_stale:
            _fake_cell(tmp_path, "stale-oracle", seed,
                       [3.0 + seed, 3.0 + seed, 3.0 + seed - h, 3.0 + seed - h], [0.0] * 4,
                       events)
        _fake_cell(tmp_path, "static", seed, [2.0, 2.0, 1.0, 1.0], [1.0] * 4, events)
        _fake_cell(tmp_path, "fancy", seed, [2.0, 2.0, 1.5 + 0.1 * seed, 1.7 + 0.1 * seed],
                   [1.0] * 4, events)
    return write_report(tmp_path, plots=False).read_text()


def test_headroom_and_the_share_of_it_each_agent_gains(tmp_path):
    from driftrank.experiments.report import headroom_by_window

    text = _headroom_run(tmp_path)
    assert "## Adaptation headroom" in text
    half = 4.303 * 0.1 / math.sqrt(3)  # sd of (1.0, 1.1, 1.2) is 0.1
    after = f"1.1000 [{1.1 - half:.4f}, {1.1 + half:.4f}]"
    whole = f"0.5500 [{0.55 - half / 2:.4f}, {0.55 + half / 2:.4f}]"
    assert f"| s | 200 | {whole} | {after} | 3 |" in text
    # fancy gains 0.6 + 0.1 s after the event (both windows count): 0.7 of 1.1 = 64%
    assert f"| s | fancy | 0.7000 [{0.7 - half:.4f}, {0.7 + half:.4f}] | 64% | 3 |" in text
    per = headroom_by_window(load_results(tmp_path), ["oracle", "stale-oracle"])
    assert per["headroom"].tolist() == pytest.approx([0.0, 0.0, 1.1, 1.1])
    assert per["lo"].iloc[2] == pytest.approx(1.1 - half)
    assert "headroom per window" in text


def test_headroom_says_what_it_needs_when_agents_are_missing(tmp_path):
    text = _headroom_run(tmp_path, with_stale=False)
    assert "Headroom needs `oracle` and `stale-oracle` in the grid (missing for: s)" in text


def _student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t, by integrating its density (t > 0)."""
    x = np.linspace(0.0, t, 20_001)
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    return 0.5 + float(np.trapezoid(c * (1 + x * x / df) ** (-(df + 1) / 2), x))


def test_t_quantiles_are_the_975_quantiles_of_student_t():
    from driftrank.experiments.statistics import t975

    for df in range(1, 31):  # the table: 3 decimals
        assert _student_t_cdf(t975(df), df) == pytest.approx(0.975, abs=5e-5), df
    for df in (31, 40, 60, 120, 1000):  # the tail formula
        assert _student_t_cdf(t975(df), df) == pytest.approx(0.975, abs=2.5e-4), df
    assert math.isnan(t975(0))


def test_mean_ci_of_nothing_is_nan_with_no_values():
    m, lo, hi, n = mean_ci([math.nan, math.inf])
    assert n == 0 and math.isnan(m) and math.isnan(lo) and math.isnan(hi)


def test_recovery_rows_are_per_abrupt_shift_and_end_at_the_next_one(tmp_path):
    """Two abrupt shifts and churn: a row per abrupt shift only; recovery after the first
    shift must happen before the second."""
    events = ["", "", "churn@250", "abrupt@350", "", "", "abrupt@650", "", "", ""]
    regrets = [0.5, 0.5, 0.5, 0.7, 0.9, 0.9, 0.9, 0.9, 0.6, 0.5]
    for seed in (0, 1):
        _fake_cell(tmp_path, "static", seed, [1.0] * 10, regrets, events)
    text = write_report(tmp_path, plots=False).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| s | ")
            and "static" in line and "[" in line.split("|")[4]]
    assert [r.split("|")[2].strip() for r in rows] == ["350", "650"]  # no row for churn
    assert "| not recovered | 2/2 | 0/2 |" in rows[0]  # back only after the next shift
    # second shift: baseline = windows 3-5 (0.7, 0.9, 0.9) = 0.833, after = window 7 (0.9),
    # 8% above: a drop; window 8 (0.6) ends at 900, 250 requests after the shift
    assert rows[1].endswith("| 0.833 [0.833, 0.833] | 0.900 [0.900, 0.900] | 250 [250, 250] "
                            "| 2/2 | 2/2 |")


def test_headroom_share_needs_a_headroom_clearly_above_zero(tmp_path):
    events = ["", "abrupt@100"]
    for seed, h in zip((0, 1, 2), (0.2, -0.2, 0.1), strict=True):
        for scenario in ("s", "t"):
            level = 3.0 if scenario == "s" else 5.0  # t must not leak into s
            _fake_cell(tmp_path, "oracle", seed, [level, level], [0.0] * 2, events, scenario)
            if scenario == "s":
                _fake_cell(tmp_path, "stale-oracle", seed, [3.0, 3.0 - h], [0.0] * 2, events,
                           scenario)
            _fake_cell(tmp_path, "static", seed, [2.0, 2.0], [1.0] * 2, events, scenario)
            _fake_cell(tmp_path, "fancy", seed, [2.0, 2.1 + seed], [1.0] * 2, events, scenario)
    text = write_report(tmp_path, plots=False).read_text()
    text = text[text.index("## Adaptation headroom"):text.index("## Paired")]
    assert "| s | fancy | 1.1000 [" in text and "| n/a | 3 |" in text  # headroom spans zero
    assert "(missing for: t)" in text and "| t |" not in text
    half = 4.303 * np.std([0.2, -0.2, 0.1], ddof=1) / math.sqrt(3)
    mean = 0.1 / 3  # whole run: half the windows are before the event (headroom 0)
    assert f"| s | 100 | {mean / 2:.4f} [{(mean - half) / 2:.4f}, {(mean + half) / 2:.4f}] " \
        f"| {mean:.4f} [{mean - half:.4f}, {mean + half:.4f}] | 3 |" in text


def test_headroom_without_a_drift_event_is_taken_over_the_whole_run(tmp_path):
    """No event (a stationary run): the headroom row says "none", has no after-event figure,
    counts the seeds of the whole-run headroom, and shares are taken of the whole-run one."""
    for seed in (0, 1, 2):
        _fake_cell(tmp_path, "oracle", seed, [3.0 + seed] * 4, [0.0] * 4)
        _fake_cell(tmp_path, "stale-oracle", seed, [2.0 + seed] * 4, [0.0] * 4)
        _fake_cell(tmp_path, "static", seed, [1.0] * 4, [1.0] * 4)
        _fake_cell(tmp_path, "fancy", seed, [1.5] * 4, [1.0] * 4)
    text = write_report(tmp_path, plots=False).read_text()
    assert "| s | none | 1.0000 [1.0000, 1.0000] | n/a | 3 |" in text
    assert "| s | fancy | 0.5000 [0.5000, 0.5000] | 50% | 3 |" in text


def test_recovery_rows_follow_the_shift_ticks_and_skip_a_shift_with_no_baseline(tmp_path):
    """Four abrupt shifts: at 50 (inside the first window: no complete window before it, so no
    row), then 350, 650 and 950, each followed by a one-window drop. Rows come in tick order and
    each shift's recovery is looked for only up to the next shift."""
    events = ["abrupt@50", "", "", "abrupt@350", "", "", "abrupt@650", "", "", "abrupt@950",
              "", ""]
    regrets = [0.5, 0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.9, 0.5, 0.5, 0.9, 0.5]
    for seed in (0, 1):
        _fake_cell(tmp_path, "static", seed, [1.0] * 12, regrets, events)
    text = write_report(tmp_path, plots=False).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| s | ")
            and "| static |" in line]
    assert [r.split("|")[2].strip() for r in rows] == ["350", "650", "950"]
    assert all(r.endswith("| 250 [250, 250] | 2/2 | 2/2 |") for r in rows)


def test_headroom_and_pairs_go_on_past_a_scenario_that_lacks_an_agent(tmp_path):
    """Scenario a lacks stale-oracle (no headroom), b lacks static (headroom but no gains or
    pairs), c has them all: c's rows are still there. In c the oracle is no better than the
    stale one (headroom exactly 0, an interval that does not exclude zero): no share."""
    agents = {"a": ("oracle", "fancy"), "b": ("oracle", "stale-oracle", "fancy"),
              "c": ("oracle", "stale-oracle", "static", "fancy", "tuned")}
    reward = {"oracle": 3.0, "stale-oracle": 3.0, "static": 1.0, "fancy": 1.5, "tuned": 1.7}
    for scenario, names in agents.items():
        for seed in (0, 1, 2):
            for name in names:
                _fake_cell(tmp_path, name, seed, [reward[name]] * 2, [0.0] * 2,
                           scenario=scenario)
    # an agent run on another seed only: nothing to pair it with, and the pairs go on past it
    _fake_cell(tmp_path, "lonely", 9, [1.2] * 2, [0.0] * 2, scenario="c")
    text = write_report(tmp_path, plots=False).read_text()
    assert "(missing for: a)" in text
    assert "| b | none | 0.0000 [0.0000, 0.0000] | n/a | 3 |" in text
    assert "| c | none | 0.0000 [0.0000, 0.0000] | n/a | 3 |" in text
    assert "| c | fancy | 0.5000 [0.5000, 0.5000] | n/a | 3 |" in text  # gain, no share
    # tuned sorts after the reference agents: their rows are skipped, not the end of the list
    assert "| c | tuned | 0.7000 [0.7000, 0.7000] | n/a | 3 |" in text
    pairs = text[text.index("## Paired"):]
    assert "| c | fancy | 0.5000 [0.5000, 0.5000] |" in pairs
    assert "| c | tuned | 0.7000 [0.7000, 0.7000] |" in pairs
    assert "| a |" not in pairs and "| b |" not in pairs and "| c | lonely |" not in pairs


def test_headroom_takes_the_first_entry_of_an_agent_listed_twice(tmp_path):
    """Two oracle entries (different configs): the headroom uses the first in report order."""
    for seed in (0, 1):
        _fake_cell(tmp_path, "oracle(x=1)", seed, [3.0] * 2, [0.0] * 2, agent="oracle")
        _fake_cell(tmp_path, "oracle(x=2)", seed, [4.0] * 2, [0.0] * 2, agent="oracle")
        _fake_cell(tmp_path, "stale-oracle", seed, [2.0] * 2, [0.0] * 2)
    text = write_report(tmp_path, plots=False).read_text()
    assert "| s | none | 1.0000 [1.0000, 1.0000] | n/a | 2 |" in text


def test_events_come_in_tick_order_whatever_their_kind_or_set_order():
    """Recovery walks the shifts in this order; sorting by kind (or leaving a set's order,
    which moves with string hashing) would pair a shift with the wrong next one."""
    from driftrank.experiments.report import _events

    ticks = [(37 * i) % 23 * 100 + 100 for i in range(23)]  # 23 distinct ticks, scrambled
    cells = ["abrupt@" + ";abrupt@".join(str(t) for t in ticks[:12]),
             "abrupt@" + ";abrupt@".join(str(t) for t in ticks[12:]) + ";quality@150;churn@50"]
    df = pd.DataFrame({"drift_events": cells + [None, ""]})
    events = _events(df)
    assert [t for _, t in events] == sorted([*ticks, 150, 50])
    assert events[:3] == [("churn", 50), ("abrupt", 100), ("quality", 150)]
    assert len(events) == len(set(events)) == 25
