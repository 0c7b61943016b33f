"""``driftrank`` command line: every command with tiny sizes, and clear errors (exit 2)."""

from __future__ import annotations

import pandas as pd
import pytest

from driftrank.experiments import store
from driftrank.experiments.cli import main

TINY = ["--requests", "400", "--batch", "100", "--window", "200",
        "--world", "n_users=300", "--world", "n_items=200"]

GRID_TOML = """
scenarios = ["stationary", "abrupt-shift"]
seeds = "0-1"
requests = 400
batch = 100
window = 200

[world]
n_users = 300
n_items = 200

[scenario_world.abrupt-shift]
abrupt_times = [200]

[[agents]]
name = "random"

[[agents]]
name = "oracle"

[run]
retries = 0
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_for_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("run", "grid", "report", "agents", "scenarios", "bench", "demo"):
        assert command in out
        code, out_c, _ = run(capsys, command, "--help")
        assert code == 0 and "usage: driftrank" in out_c


def test_scenarios_and_agents(capsys):
    code, out, _ = run(capsys, "scenarios")
    assert code == 0 and "abrupt-shift" in out
    code, out, _ = run(capsys, "agents")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and "random" in lines and "oracle" in lines
    assert "random order" in lines["random"]  # the one-line description


def test_run_prints_windows_and_saves(capsys, tmp_path):
    out_file = tmp_path / "cell.parquet"
    code, out, _ = run(capsys, "run", "--scenario", "abrupt-shift", "--agent", "oracle",
                       "--world", "abrupt_times=[200]", "--out", str(out_file),
                       "--no-progress", *TINY)
    assert code == 0
    assert "abrupt@200" in out and "total: reward/req" in out
    df = pd.read_parquet(out_file)
    assert len(df) == 2 and (df["regret_per_request"].abs() < 1e-9).all()


def test_grid_from_toml_with_flags_then_report(capsys, tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text(GRID_TOML)
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "grid", str(toml), "--seeds", "3", "--out", str(out_dir),
                       "--no-progress")
    assert code == 0 and "4 cells: 4 run" in out
    spec = store.read_grid_spec(out_dir)
    assert spec["seeds"] == [3] and spec["scenario_world"] == {"abrupt-shift": {
        "abrupt_times": [200]}}
    code, out, _ = run(capsys, "grid", str(toml), "--seeds", "3", "--out", str(out_dir),
                       "--no-progress")
    assert code == 0 and "4 already done" in out  # resumes
    code, out, _ = run(capsys, "report", str(out_dir))
    assert code == 0 and (out_dir / "report.md").is_file()
    assert (out_dir / "reward_abrupt-shift.png").is_file()


def test_grid_from_flags_only_and_failures_exit_1(capsys, tmp_path):
    code, out, _ = run(capsys, "grid", "--scenarios", "stationary", "--agents", "random",
                       "--seeds", "0", "--out", str(tmp_path / "a"), "--no-progress",
                       "--report", *TINY)
    assert code == 0 and (tmp_path / "a" / "report.md").is_file()
    # test-boom is registered by tests/test_grid.py when that module is collected
    pytest.importorskip("test_grid")
    code, out, err = run(capsys, "grid", "--scenarios", "stationary",
                         "--agents", "random,test-boom", "--retries", "0",
                         "--out", str(tmp_path / "b"), "--no-progress", *TINY)
    assert code == 1 and "FAILED" in out and "boom" in out
    code, _, err = run(capsys, "grid", "--scenarios", "stationary", "--agents", "test-boom",
                       "--retries", "0", "--out", str(tmp_path / "c"), "--no-progress", *TINY)
    assert code == 1 and "every cell failed" in err


@pytest.mark.parametrize("argv, needle", [
    (["run", "--agent", "nope", *TINY], "'nope'"),
    (["run", "--scenario", "nope", *TINY], "'nope'"),
    (["run", "--world", "n_userz=3", *TINY], "n_userz"),
    (["run", "--world", "n_users", *TINY], "KEY=VALUE"),
    (["run", "--config", "colour=red", *TINY], "colour"),
    (["run", "--requests", "450", "--batch", "100"], "requests=450"),
    (["run", "--requests", "zero"], "'zero'"),
    (["run", "--batch", "0"], "'0'"),
    (["run", "--out", "x.txt", *TINY], "x.txt"),
    (["grid", "--agents", "random"], "scenarios"),
    (["grid", "--scenarios", "stationary", "--agents", "random", "--seeds", "a-b"], "a-b"),
    (["grid", "--scenarios", "stationary", "--agents", "random", "--launcher", "slurm"],
     "slurm"),
    (["grid", "--scenarios", "stationary", "--agents", "random", "--runtime-env", "{x"],
     "runtime-env"),
    (["grid", "missing.toml"], "missing.toml"),
    (["report", "no/such/run"], "no/such/run"),
    (["bench", "gpu"], "gpu"),
])
def test_bad_values_exit_2_with_a_message_naming_them(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_bad_toml_names_the_key(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('scenarios = ["stationary"]\nagents = ["random"]\nseedz = [1]\n')
    code, _, err = run(capsys, "grid", str(bad))
    assert code == 2 and "seedz" in err
    bad.write_text("scenarios = [\n")
    code, _, err = run(capsys, "grid", str(bad))
    assert code == 2 and "bad.toml" in err


def test_bench_env_still_works(capsys):
    code, out, _ = run(capsys, "bench", "env", "--seconds", "0.01")
    assert code == 0 and "VectorRerankEnv" in out


def test_demo_passes_its_flags_to_run_demo(capsys, monkeypatch, tmp_path):
    import driftrank.experiments.demo as demo

    seen = {}

    def fake_run_demo(out="runs/demo", launcher="ray", progress=True, cache_dir=".c",
                      quick=False):
        seen.update(out=out, launcher=launcher, progress=progress, quick=quick)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    code, _, _ = run(capsys, "demo", "--quick", "--launcher", "serial", "--no-progress",
                     "--out", str(tmp_path))
    assert code == 0
    assert seen == {"out": str(tmp_path), "launcher": "serial", "progress": False,
                    "quick": True}


def test_bench_grid_prints_speedup(capsys, ray_session):
    code, out, _ = run(capsys, "bench", "grid", "--cells", "2", "--requests", "200",
                       "--batch", "100", "--world", "n_users=300", "--world", "n_items=200",
                       "--scenario", "stationary")
    assert code == 0 and "speedup (Ray vs serial):" in out
    assert "serial" in out and "ray" in out


def test_pretrain_command_trains_then_hits_the_cache(tmp_path, capsys):
    from driftrank.experiments.cli import main

    args = ["pretrain", "--scenario", "stationary", "--world", "n_users=300",
            "--world", "n_items=200", "--set", "n_requests=600", "--set", "evaluator_epochs=1",
            "--set", "imitation_epochs=1", "--set", "pg_steps=2", "--set", "eval_requests=50",
            "--cache-dir", str(tmp_path), "--threads", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "trained:" in first and "evaluator_auc" in first
    assert main(args) == 0
    assert "loaded from cache" in capsys.readouterr().out
    assert main(["pretrain", "--set", "bogus=1", "--cache-dir", str(tmp_path)]) == 2
    assert "unknown pretraining setting" in capsys.readouterr().err


# ------------------------------------------------------------------ the first page
def test_agents_name_shows_config_keys_defaults_and_ranges(capsys):
    code, out, _ = run(capsys, "agents", "drn")
    assert code == 0
    assert out.startswith("drn: DRN")
    assert "period" in out and "default 2000" in out and "allowed >= 1" in out
    assert "epsilon" in out and "allowed [0, 1]" in out
    code, out, _ = run(capsys, "agents", "random")
    assert code == 0 and "config: none" in out
    code, _, err = run(capsys, "agents", "nope")
    assert code == 2 and "'nope'" in err and "available agents" in err


def test_report_help_shows_a_plain_percent(capsys):
    code, out, _ = run(capsys, "report", "--help")
    assert code == 0 and "95% interval" in out and "95%%" not in out


@pytest.mark.parametrize("flag, needles", [
    ("period=abc", ["'incremental'", "period='abc'", "an integer"]),
    ("evaluator_lr=-1", ["'incremental'", "evaluator_lr=-1", "> 0"]),
])
def test_run_rejects_bad_config_values_by_name(capsys, flag, needles):
    code, _, err = run(capsys, "run", "--agent", "incremental", "--config", flag, *TINY)
    assert code == 2 and "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_set_values_are_parsed_like_world_values():
    """--set evaluator_ids=false is the boolean False (it used to be the truthy "false")."""
    from driftrank.agents.pretrained import PretrainConfig
    from driftrank.experiments.cli_args import key_values

    settings = key_values(["evaluator_ids=false", "n_requests=600", "pg_lr=1e-3"], "--set")
    assert settings == {"evaluator_ids": False, "n_requests": 600, "pg_lr": 0.001}
    assert PretrainConfig().replace(**settings).evaluator_ids is False


def test_a_world_typo_in_a_grid_file_names_the_file_and_the_table(capsys, tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text(GRID_TOML.replace("n_items = 200", "n_itemz = 200", 1))
    code, _, err = run(capsys, "grid", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "typo.toml: [world]" in err and "n_itemz" in err
    bad.write_text(GRID_TOML.replace("abrupt_times = [200]", "abrupt_timez = [200]"))
    code, _, err = run(capsys, "grid", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "typo.toml: [scenario_world.abrupt-shift]" in err
    assert "abrupt_timez" in err and "valid settings" in err
    assert not (tmp_path / "r").exists()  # nothing ran, nothing half-written


def test_every_command_module_registers_itself():
    """Adding a command is one module with register(sub) named in COMMANDS."""
    from driftrank.experiments.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert len(sub.choices) == len(COMMANDS) + 1  # cli_catalog registers agents + scenarios


def test_demo_prints_whole_report_sections():
    from driftrank.experiments.demo import DEMO_GRID, _section

    text = "# R\n\n## Summary\n\nrows\n### s\nmore\n\n## Adaptation headroom\n\nh\n\n## Other\n"
    assert _section(text, "## Summary") == "## Summary\n\nrows\n### s\nmore"
    assert _section(text, "## Adaptation headroom") == "## Adaptation headroom\n\nh"
    assert _section(text, "## Missing") == ""
    names = {a["name"] for a in DEMO_GRID["agents"]}
    assert {"oracle", "stale-oracle", "static"} <= names  # headroom and gain share need them


def test_a_checkpoint_that_cannot_be_loaded_is_one_line_not_a_traceback(capsys, monkeypatch):
    import driftrank.experiments.cli_run as cli_run
    from driftrank.evaluator.checkpoint import CheckpointError

    def broken(args):
        raise CheckpointError("checkpoint /c/evaluator is corrupt; run the command again")

    monkeypatch.setattr(cli_run, "cmd_run", broken)
    code, _, err = run(capsys, "run", "--agent", "static")
    assert code == 2
    assert err.strip() == ("driftrank: error: checkpoint /c/evaluator is corrupt; run the "
                           "command again")


def test_bench_tables_take_rows_with_different_columns():
    """`bench adapt` prints local rows (with CPU times) and Ray rows (without) in one table."""
    from driftrank.experiments.cli_args import table

    text = table([{"method": "last", "ms": 1.5, "cpu_ms": 1.25}, {"method": "ray", "ms": 2.0}],
                 floatfmt="{:.2f}")
    header, _, local, ray = text.splitlines()
    assert [c.strip() for c in header.strip("|").split("|")] == ["method", "ms", "cpu_ms"]
    assert [c.strip() for c in local.strip("|").split("|")] == ["last", "1.50", "1.25"]
    assert [c.strip() for c in ray.strip("|").split("|")] == ["ray", "2.00", "-"]
