"""Calibrated worlds: fit a world to a log, load it, run it; clear errors on bad logs and files.

The round trip uses a log the tests record from a *known* world (a popularity ranker with
exploration serving it), so the fitted world can be checked against the truth that made it.
"""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.stats import spearmanr

import driftrank.envs as E
from driftrank.envs import World, make_config
from driftrank.envs.calibration import CalibrationError, fitted_drift, load_calibration
from driftrank.experiments.calibrate import calibrate
from driftrank.experiments.calibrate_sim import popularity_run, synthetic_log
from driftrank.experiments.cli import main

SIZES = dict(n_items=200, n_users=300, n_candidates=20, slate_size=5)
TUNE = dict(n_candidates=20, slate_size=5)
LOG_REQUESTS = 20_000


@pytest.fixture(scope="module")
def known():
    """A known world and a log of impressions recorded from it.

    World v2 defaults are a fair match for a fitted world: the logging ranker reads no
    features (so behaviour-derived profiles do not matter), returns do not depend on
    satisfaction, and nobody leaves or joins; both worlds warm up alike."""
    config = make_config("stationary", **SIZES)
    log = synthetic_log(config, requests=LOG_REQUESTS, batch=200, seed=1)
    return config, log


@pytest.fixture(scope="module")
def fitted(known, tmp_path_factory):
    _, log = known
    path = tmp_path_factory.mktemp("cal") / "world.npz"
    result = calibrate(log, "csv", path, world=TUNE, tune_requests=2048)
    return result, path


def _arrival_probs(world: World) -> np.ndarray:
    """Base arrival probability of each user slot, read back from the population's alias
    table (slot i keeps prob[i] of its own draws and receives 1 - prob[j] of each j aliased
    to it)."""
    prob, alias = world.users._alias_prob, world.users._alias
    p = prob.copy()
    np.add.at(p, alias, 1.0 - prob)
    return p / prob.size


# ------------------------------------------------------------------------------ round trip
def test_round_trip_popularity_activity_and_ctr(known, fitted):
    config, log = known
    result, path = fitted
    item_ids, user_ids = result.extras["item_ids"], result.extras["user_ids"]
    # another world seed than the log's world: with the same seed and sizes the calibrated world
    # would share the known world's hidden draws that the file does not replace (users'
    # position-bias sensitivity, the recall order), a help no real log gives
    calibrated = make_config("stationary", calibration=str(path), world_seed=7, **TUNE)
    assert (calibrated.n_items, calibrated.n_users) == (item_ids.size, user_ids.size)

    # item popularity: the same popularity ranker, served in both worlds on a fresh seed
    popularity = np.zeros(config.n_items)
    popularity[item_ids] = result.extras["log_item_clicks"]
    in_known = popularity_run(config, popularity, 16384, 256, seed=11)
    in_fitted = popularity_run(calibrated, result.extras["log_item_clicks"], 16384, 256, seed=11)
    rho_items = spearmanr(in_known.item_clicks[item_ids], in_fitted.item_clicks)[0]
    assert rho_items > 0.75, rho_items

    # user activity: fitted arrival rates against the known world's
    known_world = World(config, 1, 0)
    cal = load_calibration(path)
    rho_users = spearmanr(_arrival_probs(known_world)[user_ids], cal.user_activity)[0]
    assert rho_users > 0.9, rho_users

    # CTR of a popularity ranker in the calibrated world (on a seed it was not tuned on) ...
    log_ctr = log["click"].mean()
    assert abs(in_fitted.ctr - log_ctr) < 0.1 * log_ctr, (in_fitted.ctr, log_ctr)
    # ... and of random slates (no scores: the first K of the world's shuffled candidates),
    # which the level was not tuned on at all
    random_known = popularity_run(config, np.zeros(1), 8192, 256, seed=11, epsilon=0.0)
    random_fitted = popularity_run(calibrated, np.zeros(1), 8192, 256, seed=11, epsilon=0.0)
    assert abs(random_fitted.ctr - random_known.ctr) < 0.2 * random_known.ctr


def test_fitted_entities_carry_the_truth_not_noise(known, fitted):
    """Item attraction averaged over the population ranks items like the known world's."""
    config, _ = known
    result, path = fitted
    item_ids = result.extras["item_ids"]

    def mean_attraction(world: World) -> np.ndarray:
        c = world.config
        items = world.items
        logit = ((world.user_u @ items.v.T) * world._k_aff + items.quality
                 + world.drift.topic_term[items.topic] + c.attraction_bias)
        return _arrival_probs(world) @ (1 / (1 + np.exp(-logit)))

    known_world = World(config, 1, 0)
    fitted_world = World(make_config("stationary", calibration=str(path), **TUNE), 1, 0)
    rho = spearmanr(mean_attraction(known_world)[item_ids], mean_attraction(fitted_world))[0]
    assert rho > 0.8, rho
    # and tastes matter: per-user affinities of the fitted world track the known world's
    u_ids = result.extras["user_ids"]
    known_aff = (known_world.user_u[u_ids] @ known_world.items.v[item_ids].T).ravel()
    fitted_aff = (fitted_world.user_u @ fitted_world.items.v.T).ravel()
    assert np.corrcoef(known_aff, fitted_aff)[0, 1] > 0.3


def test_same_log_and_seed_give_the_same_file(known, fitted, tmp_path):
    _, log = known
    result, _ = fitted
    again = calibrate(log, "csv", tmp_path / "again.npz", world=TUNE, tune_requests=2048)
    for name, array in result.arrays.items():
        np.testing.assert_array_equal(array, again.arrays[name], err_msg=name)


def test_out_of_order_timestamps_are_sorted(known, fitted, tmp_path):
    _, log = known
    result, _ = fitted
    shuffled = log.sample(frac=1.0, random_state=3)
    csv = tmp_path / "shuffled.csv"
    shuffled.to_csv(csv, index=False)
    again = calibrate(csv, "csv", None, world=TUNE, tune_requests=2048)
    assert again.metadata["log"]["sorted_by_time"] is True
    assert result.metadata["log"]["sorted_by_time"] is False
    np.testing.assert_allclose(again.arrays["user_activity"], result.arrays["user_activity"])
    np.testing.assert_array_equal(again.extras["log_item_clicks"],
                                  result.extras["log_item_clicks"])


def test_date_timestamps_are_read_and_sorted():
    from driftrank.experiments.calibrate_log import read_log

    frame, info = read_log(pd.DataFrame({
        "user": [1, 2, 1], "item": [3, 4, 5],
        "timestamp": ["2024-01-02", "2024-01-01 10:00", "2024-01-03"]}))
    assert info["sorted_by_time"] and frame["item"].tolist() == [4, 3, 5]
    assert frame["time"].iloc[2] - frame["time"].iloc[1] == 86_400.0


# ------------------------------------------------------------------------------ drift
def _interaction_log(**drift) -> pd.DataFrame:
    """Clicks only (an interaction log, no CTR to tune), from a known world with ``drift``."""
    config = make_config("stationary", **SIZES, **drift)
    log = synthetic_log(config, requests=LOG_REQUESTS, batch=200, seed=1)
    return log[log["click"] == 1].drop(columns="click")


def test_drift_abrupt_shift_becomes_a_scheduled_event():
    log = _interaction_log(abrupt_times=(10_000,), abrupt_user_share=0.8)
    drift = calibrate(log, "csv", None, n_slices=8).metadata["drift"]
    assert len(drift["abrupt_times"]) == 1  # the shift at log time 10,000 of 20,000
    assert abs(drift["abrupt_log_times"][0] - 10_000) <= LOG_REQUESTS / 8
    assert 0.5 < drift["abrupt_user_share"] <= 1.0


def test_drift_gradual_sets_a_finite_timescale_and_stationary_none():
    gradual = calibrate(_interaction_log(user_drift_timescale=5_000.0), "csv", None)
    tau = gradual.metadata["drift"]["user_drift_timescale"]
    assert tau is not None and 1_500 < tau < 20_000, tau
    assert gradual.metadata["drift"]["abrupt_times"] == []
    still = calibrate(_interaction_log(), "csv", None).metadata["drift"]
    assert still["user_drift_timescale"] is None and still["abrupt_times"] == []


def test_fitted_drift_settings_drive_the_world(tmp_path):
    path = tmp_path / "abrupt.npz"
    calibrate(_interaction_log(abrupt_times=(10_000,), abrupt_user_share=0.8), "csv", path)
    settings = fitted_drift(path)
    assert len(settings["abrupt_times"]) == 1
    config = make_config("stationary", calibration=str(path), **TUNE, **settings)
    assert config.abrupt_times == settings["abrupt_times"] and config.abrupt_user_share > 0.5


# ------------------------------------------------------------------------------ using the file
def test_calibrated_world_through_gymnasium_make_passes_check_env(fitted):
    _, path = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(E.ENV_ID, calibration=str(path), max_steps=20)
        check_env(env.unwrapped)
    cal = load_calibration(path)
    assert env.unwrapped.config.n_items == cal.sizes["n_items"]
    obs, _ = env.reset(seed=0)
    assert obs["user"].shape == (env.unwrapped.config.user_feature_dim,)
    assert int(obs["user_id"]) < cal.sizes["n_users"]


def test_calibrated_world_installs_the_fitted_entities(fitted):
    _, path = fitted
    cal = load_calibration(path)
    world = World(make_config("gradual", calibration=str(path), **TUNE), 4, 0)
    items = world.items
    np.testing.assert_array_equal(items.v, cal.item_vectors)
    np.testing.assert_array_equal(items.topic, cal.item_topic)
    np.testing.assert_array_equal(world.drift.topic_pop, cal.topic_popularity)
    # item features agents see carry the fitted topic and a projection of the fitted vectors
    t = cal.sizes["n_topics"]
    topic_part = items.static[:, :t]
    np.testing.assert_array_equal(topic_part.argmax(axis=1), cal.item_topic)
    residual = items.static[:, t:] - cal.item_vectors @ world.projection.T  # the feature noise
    assert abs(residual.std() / world.config.feature_noise - 1) < 0.05
    # churned-in items are drawn around the fitted topics' centres
    for topic in np.unique(cal.item_topic)[:3]:
        np.testing.assert_allclose(world.topic_centres[topic],
                                   cal.item_vectors[cal.item_topic == topic].mean(axis=0),
                                   atol=1e-5)
    # arrivals follow the fitted activity
    np.testing.assert_allclose(_arrival_probs(world),
                               cal.user_activity / cal.user_activity.sum(), rtol=1e-6)


def test_fitted_entities_are_installed_before_the_warm_up_and_the_frozen_truth(fitted):
    """The warm-up is served to the fitted users and items, and the episode-start truth the
    stale oracle ranks by is the fitted one."""
    _, path = fitted
    cal = load_calibration(path)
    # another world seed than the log's world: its drawn users and items are unrelated to the
    # fitted ones (with the same seed and sizes they would be the very users the log came from)
    config = make_config("quality-drift", calibration=str(path), world_seed=7, **TUNE)
    assert config.warmup_ticks > 0
    world = World(config, 4, 0)
    users, items = world.users, world.items
    np.testing.assert_array_equal(users.taste0, cal.user_tastes)  # no taste drift here
    factors0 = world.drift.quality_factors  # no tick served yet: the frozen factors
    np.testing.assert_allclose(items.quality0, cal.item_quality + items.loading @ factors0,
                               atol=1e-5)
    # warm-up visits follow the fitted activity (the drawn one is unrelated to it)
    assert spearmanr(users.visits, cal.user_activity)[0] > 0.6
    # and warm-up clicks went to the items the fitted world makes attractive
    attraction = ((cal.user_activity / cal.user_activity.sum()) @ (
        cal.user_tastes @ cal.item_vectors.T) * world._k_aff + items.quality0
        + cal.topic_popularity[cal.item_topic])
    ctr = items.clicks / np.maximum(items.impressions, 1)
    assert spearmanr(ctr, attraction)[0] > 0.5


def test_driftrank_run_and_calibrate_commands(known, tmp_path, capsys):
    _, log = known
    csv = tmp_path / "log.csv"
    log.rename(columns={"user": "uid", "timestamp": "ts"}).to_csv(csv, index=False)
    out = tmp_path / "w.npz"
    code = main(["calibrate", str(csv), "--format", "csv", "--user-col", "uid", "--time-col",
                 "ts", "--out", str(out), "--world", "n_candidates=20", "--world",
                 "slate_size=5", "--tune-requests", "1024"])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file() and "200 items, 300 users" in text
    # a v2 scenario on the calibrated entities: hidden quality drift and a shock at 200
    code = main(["run", "--scenario", "quality-drift", "--agent", "random", "--world",
                 f"calibration={out}", "--world", "quality_shock_times=[200]", "--world",
                 "n_candidates=20", "--world", "slate_size=5", "--requests", "400", "--batch",
                 "100", "--window", "200", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "total: reward/req" in text and "quality_shock@200" in text
    code = main(["grid", "--scenarios", "stationary,gradual", "--agents", "random", "--world",
                 f"calibration={out}", "--world", "n_candidates=20", "--world", "slate_size=5",
                 "--requests", "400", "--batch", "100", "--window", "200", "--out",
                 str(tmp_path / "grid"), "--no-progress"])
    assert code == 0 and "2 cells: 2 run" in capsys.readouterr().out
    code = main(["calibrate", str(csv), "--format", "csv", "--out", str(out)])
    assert code == 2 and "'user'" in capsys.readouterr().err  # uid is not 'user'


# ------------------------------------------------------------------------------ MovieLens
def test_movielens_u_data_with_genres(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    rows = pd.DataFrame({"user": rng.integers(1, 61, n), "item": rng.integers(1, 81, n),
                         "rating": rng.integers(1, 6, n), "timestamp": rng.integers(0, 10**6, n)})
    rows.to_csv(tmp_path / "u.data", sep="\t", header=False, index=False)
    with open(tmp_path / "u.item", "w", encoding="latin-1") as f:
        for item in range(1, 81):
            flags = ["0"] * 19
            flags[1 + item % 3] = "1"  # Action, Adventure or Animation
            f.write(f"{item}|Movie {item}|01-Jan-1995||http://x|{'|'.join(flags)}\n")
    result = calibrate(tmp_path / "u.data", "movielens", tmp_path / "ml.npz")
    assert result.metadata["topics"]["names"] == ["Action", "Adventure", "Animation"]
    assert result.metadata["log"]["kind"] == "interactions"
    item_ids = result.extras["item_ids"]
    np.testing.assert_array_equal(result.arrays["item_topic"], (item_ids % 3))
    ratings = rows.rename(columns={"user": "userId", "item": "movieId"})
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    other = calibrate(tmp_path / "ratings.csv", "movielens", None, genres=False)
    assert other.sizes["n_items"] == result.sizes["n_items"]
    assert other.metadata["topics"]["source"] == "k-means of item vectors"


# ------------------------------------------------------------------------------ bad logs
@pytest.mark.parametrize("frame, needle", [
    (pd.DataFrame({"user": [1, 2], "item": [1, 2]}), "['timestamp']"),
    (pd.DataFrame({"user": [1], "item": [1], "timestamp": [0]}).iloc[:0], "no rows"),
    (pd.DataFrame({"user": ["a", "b"], "item": [1, 2], "timestamp": [0, 1]}),
     "non-numeric id 'a' at row 0"),
    (pd.DataFrame({"user": [1, 2], "item": [1, 2.5], "timestamp": [0, 1]}),
     "column 'item' has a non-integer id 2.5 at row 1"),
    (pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [0, 1], "click": [1, 3]}),
     "must be 0 or 1"),
    (pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [0, "soon"]}),
     "'soon' at row 1"),
    (pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [0, 1], "click": [0, 0]}),
     "no clicks"),
])
def test_bad_logs_name_the_fault(frame, needle):
    with pytest.raises(ValueError) as info:
        calibrate(frame, "csv", None)
    assert needle in str(info.value)


def test_missing_and_empty_log_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        calibrate(tmp_path / "nope.csv", "csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        calibrate(tmp_path / "empty.csv", "csv")
    (tmp_path / "header.csv").write_text("user,item,timestamp\n")
    with pytest.raises(ValueError, match="no rows"):
        calibrate(tmp_path / "header.csv", "csv")


# ------------------------------------------------------------------------------ bad files
def _rewrite(src, dst, drop=(), **replace):
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(replace)
    np.savez(dst, **arrays)
    return dst


def test_bad_calibration_files_say_what_is_wrong(fitted, tmp_path):
    _, path = fitted
    meta = json.loads(str(np.load(path)["metadata"]))
    cases = [
        (_rewrite(path, tmp_path / "a.npz", drop=("user_tastes",)), "missing array(s) "
         "['user_tastes']"),
        (_rewrite(path, tmp_path / "b.npz", item_quality=np.zeros(3)), "item_quality has shape"),
        (_rewrite(path, tmp_path / "c.npz", metadata=np.array(json.dumps({**meta, "version": 9}))),
         "format version 9"),
        (_rewrite(path, tmp_path / "d.npz", drop=("metadata",)), "no 'metadata'"),
        (_rewrite(path, tmp_path / "e.npz", item_topic=np.full(200, 99)), "item_topic"),
        (tmp_path / "missing.npz", "not found"),
    ]
    for bad, needle in cases:
        with pytest.raises(CalibrationError) as info:
            make_config("stationary", calibration=str(bad))
        assert needle in str(info.value), (needle, str(info.value))
        assert "driftrank calibrate" in str(info.value)


def test_sizes_follow_the_file_and_conflicts_are_named(fitted):
    _, path = fitted
    config = make_config("stationary", calibration=str(path), n_candidates=20, slate_size=5)
    assert config.n_items == 200 and config.latent_dim == 16
    with pytest.raises(ValueError, match="n_users"):
        make_config("stationary", calibration=str(path), n_users=123)
    with pytest.raises(ValueError, match="calibration=3"):
        make_config("stationary", calibration=3)


def test_overwritten_file_gets_a_new_cache_key_and_stale_configs_are_named(fitted, tmp_path):
    """Pretraining caches key on the file's contents, not its path: an overwritten ``.npz``
    never reuses checkpoints trained on the old one."""
    from driftrank.agents.pretrained import PretrainConfig, cache_key

    _, path = fitted
    copy = tmp_path / "world.npz"
    copy.write_bytes(path.read_bytes())
    before = make_config("stationary", calibration=str(copy), **TUNE)
    key = cache_key(before, 0, PretrainConfig())
    assert cache_key(make_config("stationary", calibration=str(copy), **TUNE), 0,
                     PretrainConfig()) == key  # same contents, same key
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["item_quality"] = arrays["item_quality"] + 0.5
    np.savez(copy, **arrays)  # same path, same size, other contents
    after = make_config("stationary", calibration=str(copy), **TUNE)
    assert after.calibration == before.calibration
    assert after.calibration_digest != before.calibration_digest
    assert cache_key(after, 0, PretrainConfig()) != key
    # a config made before the overwrite and rebuilt after it is refused, not silently changed
    with pytest.raises(CalibrationError, match="changed since this world config was made"):
        before.replace(max_steps=5)
    assert after.replace(max_steps=5).calibration_digest == after.calibration_digest
    assert before.replace(calibration=str(path)).calibration_digest == before.calibration_digest
    with pytest.raises(ValueError, match="without a calibration file"):
        make_config("stationary", calibration_digest="abc")
