"""The runner: one cell -> per-window metrics; deterministic; labels-only feedback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftrank.agents import AgentContext, BaseAgent, make_agent, register_agent
from driftrank.envs import Feedback, VectorRerankEnv
from driftrank.experiments.runner import (
    COLUMNS,
    RUN_MAX_STEPS,
    TIMING_COLUMNS,
    CellSpec,
    agent_label,
    parse_events,
    run_cell,
)

WORLD = dict(n_users=300, n_items=200)


def cell(agent="random", scenario="stationary", seed=0, **kw) -> CellSpec:
    base = dict(requests=2000, batch=100, window=500, world=dict(WORLD))
    base.update(kw)
    return CellSpec(scenario=scenario, agent=agent, seed=seed, **base)


def steady(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=list(TIMING_COLUMNS))


# ------------------------------------------------------------------ test agents
RECORDED: dict[str, list] = {}


@register_agent("test-recorder", "records what the runner hands it (tests only)")
class RecorderAgent(BaseAgent):
    name = "test-recorder"

    def __init__(self, context: AgentContext, period: int = 250, key: str = "default"):
        super().__init__(context)
        self.period = period
        self.log = RECORDED.setdefault(key, [])

    def act(self, obs):
        self.last_obs = obs
        self.log.append(("act", obs))
        b = obs["candidate_ids"].shape[0]
        return np.tile(np.arange(self.context.slate_size), (b, 1))

    def observe(self, feedback):
        self.log.append(("observe", feedback, self.last_obs))

    def on_period(self, step):
        self.log.append(("period", step))


# ------------------------------------------------------------------ tests
def test_columns_and_windows():
    df = run_cell(cell())
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4 and df["window"].tolist() == [0, 1, 2, 3]
    assert df["tick_start"].tolist() == [0, 500, 1000, 1500]
    assert df["tick_end"].tolist() == [500, 1000, 1500, 2000]
    assert (df["requests"] == 500).all()
    assert df["cell_id"].nunique() == 1 and df["cell_id"].iloc[0] == cell().cell_id
    assert (df["regret_per_request"] > 0).all()  # random is worse than the reference
    np.testing.assert_allclose(df["regret_per_request"],
                               df["reference_reward"] - df["expected_reward"])


def test_same_cell_same_frame_except_timing():
    a, b = run_cell(cell(seed=3)), run_cell(cell(seed=3))
    pd.testing.assert_frame_equal(steady(a), steady(b))
    c = run_cell(cell(seed=4))
    assert not steady(a).drop(columns=["cell_id", "seed"]).equals(
        steady(c).drop(columns=["cell_id", "seed"]))


@pytest.mark.parametrize("scenario", ["stationary", "cold-churn"])
def test_metrics_match_a_hand_loop(scenario):
    """Every window's reward, CTR, conversions, truth, regret, return gap and population are
    what their definitions say (each window starts from zero: nothing carries over). In
    ``cold-churn`` users join: their first visits (gap -1) must stay out of the return gap."""
    spec = cell(seed=2, scenario=scenario)
    df = run_cell(spec)
    env = VectorRerankEnv(100, scenario, **WORLD, max_steps=RUN_MAX_STEPS)
    obs, _ = env.reset(seed=2)
    agent = make_agent("random", AgentContext(world=env.config, seed=2))
    first_visits = 0
    for w in range(4):  # four windows of 5 steps of 100
        sums, gaps = np.zeros(5), []
        for _ in range(5):
            slates = agent.act(obs)
            obs, reward, _, _, info = env.step(slates)
            t = info["truth"]
            sums += [reward.sum(), info["clicks"].sum(), len(info["conversions"]),
                     t["expected_reward"].sum(), t["reference_reward"].sum()]
            gaps.extend(g for g in np.asarray(info["return_gap"]).tolist() if g >= 0)
            first_visits += int(np.count_nonzero(np.asarray(info["return_gap"]) < 0))
        row = df.iloc[w]
        assert row["reward_per_request"] == pytest.approx(sums[0] / 500)
        assert row["ctr"] == pytest.approx(sums[1] / (10 * 500))
        assert row["conversions_per_request"] == pytest.approx(sums[2] / 500)
        assert row["expected_reward"] == pytest.approx(sums[3] / 500)
        assert row["reference_reward"] == pytest.approx(sums[4] / 500)
        assert row["regret_per_request"] == pytest.approx((sums[4] - sums[3]) / 500)
        assert row["return_gap"] == pytest.approx(np.mean(gaps) if gaps else np.nan,
                                                  nan_ok=True)
        assert row["active_users"] == int(info["active_users"])
    agent.close()
    assert (first_visits > 0) == (scenario == "cold-churn")  # the newcomers are really there


def test_late_clicks_reach_the_agent_and_ctr_counts_clicks_made():
    """With click_delay the agent gets the clicks later, in click_reports (each once); CTR counts
    the clicks users made, so it equals the no-delay CTR of the same cell."""
    now = run_cell(cell(seed=3))
    RECORDED.pop("late", None)
    late_spec = cell("test-recorder", seed=3, world={**WORLD, "click_delay": 150},
                     agent_config={"key": "late"})
    late = run_cell(late_spec)
    same = run_cell(cell("test-recorder", seed=3, agent_config={"key": "late-now"}))
    np.testing.assert_allclose(late["ctr"], same["ctr"])
    assert now["ctr"].gt(0).all()
    observed = [e[1] for e in RECORDED["late"] if e[0] == "observe"]
    assert all(fb.clicks.sum() == 0 for fb in observed)  # nothing reported on the step served
    reported = np.concatenate([fb.click_reports.request_id for fb in observed])
    made = same["ctr"].to_numpy() @ same["requests"].to_numpy() * 10
    assert 0 < reported.size <= made  # clicks land late (the last ones after the cell ends)
    assert reported.min() >= 0 and len(np.unique(np.stack(
        [reported, np.concatenate([fb.click_reports.position for fb in observed])]), axis=1)
        .T) == reported.size  # each click reported once


def test_returns_and_population_are_recorded():
    df = run_cell(cell(seed=4))
    assert df["active_users"].between(1, 10_000).all()
    assert df["return_gap"].iloc[1:].gt(0).all()  # users come back, after some ticks


def test_common_random_numbers_across_agents():
    """Same seed: random and oracle meet the same requests (same reference reward)."""
    r = run_cell(cell("random", seed=5))
    o = run_cell(cell("oracle", seed=5))
    np.testing.assert_array_equal(r["reference_reward"], o["reference_reward"])
    assert (o["regret_per_request"].abs() < 1e-9).all()  # the oracle reads truth
    assert (o["reward_per_request"] > r["reward_per_request"]).all()


def test_feedback_is_labels_only_and_period_hook():
    RECORDED.pop("fb", None)
    run_cell(cell("test-recorder", requests=1000, agent_config={"period": 250, "key": "fb"}))
    log = RECORDED["fb"]
    acts = [e for e in log if e[0] == "act"]
    observes = [e for e in log if e[0] == "observe"]
    periods = [e[1] for e in log if e[0] == "period"]
    assert len(acts) == len(observes) == 10
    # requests_done crosses 250, 500, 750, 1000 at 300, 500, 800, 1000
    assert periods == [300, 500, 800, 1000]
    for (_, fb, served), (_, obs) in zip(observes, acts, strict=True):
        assert isinstance(fb, Feedback)
        assert fb.obs is served and fb.obs is obs  # the batch those slates answered
        assert set(vars(fb)) == {"request_id", "slates", "clicks", "conversions", "reward",
                                 "obs", "click_reports"}
        assert "truth" not in fb.obs
        assert fb.clicks.shape == fb.slates.shape == (100, 10)
    ids = np.concatenate([fb.request_id for _, fb, _ in observes])
    np.testing.assert_array_equal(ids, np.arange(1000))


def test_drift_events_land_in_their_window():
    df = run_cell(cell(scenario="abrupt-shift", world={**WORLD, "abrupt_times": [1000]}))
    assert df["drift_events"].tolist() == ["", "", "abrupt@1000", ""]
    assert parse_events("abrupt@1000;churn@1200") == [("abrupt", 1000), ("churn", 1200)]
    assert parse_events("") == []


def test_last_window_may_be_partial():
    df = run_cell(cell(requests=1200, window=500))
    assert df["requests"].tolist() == [500, 500, 200]


def test_cell_id_is_stable_and_readable():
    a = cell(agent_config={"x": 1, "y": [1, 2]})
    b = CellSpec.from_dict(a.to_dict())
    assert a.cell_id == b.cell_id
    assert a.cell_id.startswith("stationary.random.s0.")
    assert cell(seed=1).cell_id != cell(seed=0).cell_id
    assert cell(world={"n_users": 300, "n_items": 200}).cell_id == cell(
        world={"n_items": 200, "n_users": 300}).cell_id
    assert agent_label("last", {"b": 2, "a": "x"}) == 'last(a="x", b=2)'


@pytest.mark.parametrize("kw, needle", [
    (dict(requests=1050), "requests=1050"),
    (dict(window=250), "window=250"),
    (dict(window=4000), "window=4000"),
    (dict(batch=0), "batch=0"),
    (dict(world={"max_steps": 5}), "max_steps=5"),
])
def test_bad_cell_settings_name_the_value(kw, needle):
    with pytest.raises(ValueError, match=needle):
        cell(**kw)


def test_bad_world_setting_or_agent_fails_before_running():
    with pytest.raises(ValueError, match="n_userz"):
        run_cell(cell(world={"n_userz": 3}))
    with pytest.raises(ValueError, match="no-such-agent"):
        run_cell(cell("no-such-agent"))


def test_threads_are_set_in_the_cell():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        run_cell(cell(requests=500), threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ lifecycle
CLOSED: list[str] = []


@register_agent("test-closing", "records close(); optionally fails in act() (tests only)")
class ClosingAgent(BaseAgent):
    name = "test-closing"

    def __init__(self, context: AgentContext, fail_at: int = -1, key: str = "ok"):
        super().__init__(context)
        self.fail_at, self.key, self.calls = fail_at, key, 0

    def act(self, obs):
        if self.calls == self.fail_at:
            raise RuntimeError("agent broke on purpose")
        self.calls += 1
        return np.tile(np.arange(self.context.slate_size), (obs["candidate_ids"].shape[0], 1))

    def close(self):
        CLOSED.append(self.key)


def test_the_runner_closes_the_agent_after_a_cell():
    CLOSED.clear()
    run_cell(cell("test-closing", requests=500, agent_config={"key": "done"}))
    assert CLOSED == ["done"]


def test_the_runner_closes_the_agent_when_the_cell_fails():
    CLOSED.clear()
    with pytest.raises(RuntimeError, match="on purpose"):
        run_cell(cell("test-closing", requests=500, agent_config={"fail_at": 2, "key": "x"}))
    assert CLOSED == ["x"]


def test_on_period_is_called_for_every_period_a_batch_passes():
    """One period mechanism: batch 100, period 40 -> on_period at 100 (40, 80), 200 (120, 160,
    200), ... with the requests served so far, exactly requests // period times in all."""
    RECORDED.pop("p40", None)
    run_cell(cell("test-recorder", requests=500, agent_config={"period": 40, "key": "p40"}))
    periods = [e[1] for e in RECORDED["p40"] if e[0] == "period"]
    assert len(periods) == 500 // 40
    assert periods[:5] == [100, 100, 200, 200, 200]


def test_drift_events_firing_at_reset_are_kept():
    df = run_cell(cell(scenario="abrupt-shift", world={**WORLD, "abrupt_times": [0, 1000]}))
    assert df["drift_events"].tolist() == ["abrupt@0", "", "abrupt@1000", ""]


# ------------------------------------------------------------------ the slate contract
BAD_SLATES = {
    "nan": ("non-finite value (NaN or inf) in row 3", "integer array"),
    "float": ("float dtype float64", ".astype(np.int64)"),
    "shape": ("returned shape (100, 9)", "(100, 10) integer array"),
    "range": ("candidate index 999 in row 5, slot 0", "[0, 49]"),
    "repeat": ("repeated candidate(s) [1] in row 7", "strict=False"),
}


@register_agent("test-bad-slates", "returns one kind of broken slate at step 2 (tests only)")
class BadSlateAgent(BaseAgent):
    name = "test-bad-slates"

    def __init__(self, context: AgentContext, fault: str = "nan"):
        super().__init__(context)
        self.fault, self.step = fault, 0

    def act(self, obs):
        b = obs["candidate_ids"].shape[0]
        slates = np.tile(np.arange(self.context.slate_size), (b, 1))
        self.step += 1
        if self.step != 3:
            return slates
        if self.fault == "nan":
            slates = slates.astype(float)
            slates[3, 2] = np.nan
        elif self.fault == "float":
            slates = slates.astype(float)
        elif self.fault == "shape":
            slates = slates[:, :-1]
        elif self.fault == "range":
            slates[5, 0] = 999
        elif self.fault == "repeat":
            slates[7, 0] = 1
        return slates


@pytest.mark.parametrize("fault", sorted(BAD_SLATES))
def test_a_broken_slate_names_the_agent_the_step_the_row_and_the_rule(fault):
    what, fix = BAD_SLATES[fault]
    with pytest.raises(ValueError) as info:
        run_cell(cell("test-bad-slates", agent_config={"fault": fault}))
    text = str(info.value)
    assert "agent 'test-bad-slates'" in text and "step 2 (requests 200-299)" in text
    assert what in text and fix in text


def test_non_strict_serving_counts_the_empty_slots():
    """Chosen on purpose, repeated candidates are served with the slot left empty, and the
    results say how many (strict serving has none)."""
    df = run_cell(cell("test-bad-slates", agent_config={"fault": "repeat"}, strict=False))
    assert df["empty_slots_per_request"].tolist() == [1 / 500, 0.0, 0.0, 0.0]
    clean = run_cell(cell("random"))
    assert (clean["empty_slots_per_request"] == 0).all()
    assert cell(strict=False).cell_id != cell().cell_id
    assert "strict" not in cell().to_dict()  # ids of strict cells did not change


def test_timing_columns_read_the_clock_around_act_and_the_step(monkeypatch):
    """With a clock that advances 1 ms per reading, act() takes 1 ms (two readings around it)
    and a step 3 ms (its first reading to its last): the columns are milliseconds per call and
    requests per second of the window."""
    import types

    from driftrank.experiments import runner

    clock = iter(np.arange(1_000_000) * 1e-3)
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    df = run_cell(cell())
    np.testing.assert_allclose(df["act_p50_ms"], 1.0)
    np.testing.assert_allclose(df["act_p99_ms"], 1.0)
    np.testing.assert_allclose(df["requests_per_s"], 500 / (5 * 3e-3))


# ------------------------------------------------------------------ act() latency
class _FakeClock:
    """A perf_counter that only moves when an agent's act() says so (seconds)."""

    now = 0.0

    def perf_counter(self):
        return self.now


FAKE_CLOCK = _FakeClock()


@register_agent("test-timed", "its act() takes the given milliseconds on a fake clock (tests)")
class TimedAgent(BaseAgent):
    name = "test-timed"

    def __init__(self, context: AgentContext, act_ms: tuple = (1.0,)):
        super().__init__(context)
        self.act_ms, self.calls = list(act_ms), 0

    def act(self, obs):
        FAKE_CLOCK.now += self.act_ms[self.calls % len(self.act_ms)] * 1e-3
        self.calls += 1
        return np.tile(np.arange(self.context.slate_size), (obs["candidate_ids"].shape[0], 1))


def test_latency_percentiles_are_the_median_and_the_99th_of_the_window(monkeypatch):
    """act() takes 3, 1, 5, 2, 4 ms in each window of five calls: the median is 3 ms, the 99th
    percentile (linear interpolation) 4 + 0.96 = 4.96 ms, and the window's wall time is the
    15 ms spent in act() (the fake clock stands still elsewhere)."""
    from driftrank.experiments import runner

    monkeypatch.setattr(FAKE_CLOCK, "now", 0.0)
    monkeypatch.setattr(runner, "time", FAKE_CLOCK)
    df = run_cell(cell("test-timed", requests=1000,
                       agent_config={"act_ms": [3.0, 1.0, 5.0, 2.0, 4.0]}))
    np.testing.assert_allclose(df["act_p50_ms"], 3.0)
    np.testing.assert_allclose(df["act_p99_ms"], 4.96)
    np.testing.assert_allclose(df["requests_per_s"], 500 / 15e-3)


def test_a_window_with_no_measurable_wall_time_reports_infinite_throughput(monkeypatch):
    """A clock too coarse to see a window (zero wall time) gives inf requests/s, not a crash."""
    from driftrank.experiments import runner

    monkeypatch.setattr(FAKE_CLOCK, "now", 0.0)
    monkeypatch.setattr(runner, "time", FAKE_CLOCK)
    df = run_cell(cell("test-timed", requests=500, agent_config={"act_ms": [0.0]}))
    assert df["requests_per_s"].tolist() == [np.inf]
    assert df["act_p50_ms"].tolist() == [0.0]


# ------------------------------------------------------------------ plugins, threads, progress
ATTACHED: list[str] = []


@register_agent("test-duck", "a plugin agent that does not subclass BaseAgent (tests only)")
class DuckAgent:
    """Only act() and observe(), plus an attach_world() it never asked to be called (no
    ``needs_world``): the world's truth must not reach it."""

    def __init__(self, context: AgentContext):
        self.k = context.slate_size

    def act(self, obs):
        return np.tile(np.arange(self.k), (obs["candidate_ids"].shape[0], 1))

    def observe(self, feedback):
        pass

    def attach_world(self, world):
        ATTACHED.append("duck")


def test_a_plugin_agent_gets_the_world_only_if_it_asks():
    ATTACHED.clear()
    df = run_cell(cell("test-duck", requests=500))
    assert len(df) == 1 and ATTACHED == []


def test_a_cell_caps_torch_at_one_thread_by_default():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_cell(cell(requests=500))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


class _RecordingBar:
    """Stands in for tqdm: records what the runner tells its progress bar."""

    made: list[_RecordingBar] = []

    def __init__(self, total, desc, unit, leave):
        self.total, self.desc, self.unit, self.leave = total, desc, unit, leave
        self.done, self.closed = 0, False
        _RecordingBar.made.append(self)

    def update(self, n):
        self.done += n

    def close(self):
        self.closed = True


def test_progress_is_off_by_default_and_counts_every_step_when_on(monkeypatch):
    import tqdm.auto

    _RecordingBar.made.clear()
    monkeypatch.setattr(tqdm.auto, "tqdm", _RecordingBar)
    run_cell(cell(requests=500))
    assert _RecordingBar.made == []
    spec = cell(requests=500)
    run_cell(spec, progress=True)
    (bar,) = _RecordingBar.made
    assert (bar.total, bar.done, bar.closed) == (5, 5, True)
    assert bar.desc == spec.label and bar.unit == "step"
    assert bar.leave is False  # a grid's cells do not leave a bar each behind


def test_a_cell_needs_at_least_one_thread():
    with pytest.raises(ValueError, match=r"threads=0 must be an integer >= 1"):
        run_cell(cell(requests=500), threads=0)


def test_a_period_of_one_calls_on_period_after_every_request():
    RECORDED.pop("p1", None)
    run_cell(cell("test-recorder", requests=500, agent_config={"period": 1, "key": "p1"}))
    periods = [e[1] for e in RECORDED["p1"] if e[0] == "period"]
    assert len(periods) == 500 and periods[:101] == [100] * 100 + [200]


def test_a_drift_event_inside_a_window_lands_in_that_window():
    df = run_cell(cell(scenario="abrupt-shift", world={**WORLD, "abrupt_times": [1250]}))
    assert df["drift_events"].tolist() == ["", "", "abrupt@1250", ""]  # window [1000, 1500)
