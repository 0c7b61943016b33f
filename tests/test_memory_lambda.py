"""The lam experiment: selection on pre-shift slots of some seeds, test on post-shift slots of
others, gains paired with the base evaluator; and the sweep itself on a tiny world."""

from __future__ import annotations

import pandas as pd
import pytest

from driftrank.experiments.memory_lambda import lambda_sweep, select_and_test


def _rows(seed, slot, start, end, values):
    """values: lam -> (logloss, auc, n)."""
    return [{"seed": seed, "slot": slot, "tick_start": start, "tick_end": end, "lam": lam,
             "logloss": ll, "auc": a, "n": n} for lam, (ll, a, n) in values.items()]


def test_selection_uses_pre_shift_slots_of_its_seeds_and_tests_on_the_others():
    rows = []
    for seed in (0, 1):  # selection seeds: pre-shift slot 1 favours lam 0.2
        rows += _rows(seed, 0, 0, 100, {0.0: (0.30, 0.7, 10), 0.2: (0.10, 0.7, 10),
                                        0.5: (0.10, 0.7, 10)})  # first slot: never used
        rows += _rows(seed, 1, 100, 200, {0.0: (0.30, 0.70, 10), 0.2: (0.29, 0.71, 10),
                                          0.5: (0.31, 0.72, 10)})
        rows += _rows(seed, 2, 200, 300, {0.0: (0.30, 0.7, 10), 0.2: (0.50, 0.6, 10),
                                          0.5: (0.10, 0.9, 10)})  # post-shift: not for selection
    # test seeds: two post-shift slots of unequal size (impression-weighted), one pre-shift slot
    rows += _rows(2, 1, 100, 200, {0.0: (9.0, 0.0, 5), 0.2: (9.0, 0.0, 5), 0.5: (9.0, 0.0, 5)})
    rows += _rows(2, 2, 200, 300, {0.0: (0.40, 0.60, 10), 0.2: (0.38, 0.62, 10),
                                   0.5: (0.42, 0.63, 10)})
    rows += _rows(2, 3, 300, 400, {0.0: (0.40, 0.60, 30), 0.2: (0.36, 0.66, 30),
                                   0.5: (0.40, 0.60, 30)})
    rows += _rows(3, 2, 200, 300, {0.0: (0.50, 0.50, 20), 0.2: (0.49, 0.52, 20),
                                   0.5: (0.50, 0.50, 20)})
    res = select_and_test(pd.DataFrame(rows), [0, 1], [2, 3], shift=200)
    assert res["chosen"] == 0.2
    sel = res["select"].set_index("lam")
    assert sel.loc[0.2, "logloss_gain"] == pytest.approx(10.0)  # (0.30 - 0.29) * 1000
    assert sel.loc[0.5, "logloss_gain"] == pytest.approx(-10.0)
    test = res["test"].set_index("lam")
    # seed 2: weighted log-loss 0.40 vs (0.38*10 + 0.36*30)/40 = 0.365 -> +35; seed 3: +10
    assert test.loc[0.2, "logloss_gain"] == pytest.approx(22.5)
    assert test.loc[0.2, "n"] == 2
    # AUC points: seed 2: (0.62*10 + 0.66*30)/40 - 0.60 = 0.05 -> 5; seed 3: 2 -> mean 3.5
    assert test.loc[0.2, "auc_gain"] == pytest.approx(3.5)
    lo, hi = test.loc[0.2, ["logloss_lo", "logloss_hi"]]
    assert hi - 22.5 == pytest.approx(22.5 - lo) == pytest.approx(12.706 * 12.5, rel=1e-3)
    with pytest.raises(ValueError, match="overlap"):
        select_and_test(pd.DataFrame(rows), [0, 1], [1, 2], shift=200)


TINY = dict(n_requests=800, evaluator_epochs=1, imitation_epochs=1, pg_steps=3,
            eval_requests=50)


def test_sweep_on_a_tiny_world(tmp_path):
    df = lambda_sweep("quality-drift", 0, lams=(0.0, 0.5, 1.0),
                      world={"n_users": 300, "n_items": 300, "quality_shock_times": [400]},
                      requests=600, batch=100, window=100, pretrain_config=TINY,
                      cache_dir=tmp_path)
    assert sorted(df["slot"].unique()) == [0, 1, 2, 3, 4, 5]
    assert (df.groupby("slot")["tick_end"].first().diff().dropna() == 100).all()
    by = df.set_index(["slot", "lam"])
    # the first batch is scored by an empty memory: every lam is the base evaluator
    assert by.loc[(0, 0.5), "logloss"] == by.loc[(0, 0.0), "logloss"]
    # later slots: the read-out moves predictions, the more the larger lam
    for slot in (1, 2, 3, 4, 5):
        assert by.loc[(slot, 0.5), "logloss"] != by.loc[(slot, 0.0), "logloss"]
        assert by.loc[(slot, 1.0), "logloss"] != by.loc[(slot, 0.5), "logloss"]
    assert (df["n"] > 0).all() and df["auc"].between(0, 1).all()
