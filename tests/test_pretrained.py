"""The offline phase on the real world: metrics, determinism, the cache (its repairs are in
test_pretrained_cache.py)."""

from __future__ import annotations

import pytest
import torch

from driftrank.agents.pretrained import PretrainConfig, pretrain
from driftrank.envs import make_config
from driftrank.experiments.truth_metrics import truth_metrics

# the v1 control world (features reveal the current taste): the pipeline's margins are measured
# there; in the default behaviour-feature world the generator's edge over the behaviour policy
# is smaller (about +2% against +10% here), which is the point of that world
WORLD = make_config("abrupt-shift", n_users=1000, n_items=500, user_features="taste")
CONFIG = PretrainConfig(n_requests=10_000, evaluator_epochs=5, imitation_epochs=2, pg_steps=60,
                        eval_requests=800)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    return pretrain(WORLD, config=CONFIG, cache_dir=tmp_path_factory.mktemp("a"),
                    measure=truth_metrics)


def test_pretrained_models_beat_the_baselines_they_should(trained):
    """Margins a correct pipeline clears with room on this world (measured: AUC +0.019,
    Spearman 0.29, generator +15% over the behaviour policy) and a broken one cannot."""
    m = trained.metrics
    assert m["evaluator_auc"] > m["position_baseline_auc"] + 0.01, m
    assert m["evaluator_spearman"] > 0.15, m
    assert m["generator_true_reward"] > 1.05 * m["behaviour_true_reward"], m
    assert m["behaviour_true_reward"] > m["random_true_reward"], m
    # policy gradient (anchored by the imitation loss) must not undo the warm start
    assert m["generator_true_reward"] > 0.98 * m["imitation_true_reward"], m
    assert m["reference_true_reward"] > m["generator_true_reward"], m


def test_same_seed_same_weights_and_the_cache_is_hit(trained, tmp_path):
    again = pretrain(WORLD, config=CONFIG, cache_dir=tmp_path)
    assert not again.cache_hit
    for a, b in ((trained.evaluator, again.evaluator), (trained.generator, again.generator)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    hit = pretrain(WORLD, config=CONFIG, cache_dir=tmp_path)
    assert hit.cache_hit and hit.path == again.path
