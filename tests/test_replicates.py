"""Seed aggregation, the two-level bootstrap and Holm's correction (lensfinder.replicates),
against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from lensfinder.metrics import evaluate_scores
from lensfinder.replicates import (METRICS, SeedScores, bootstrap_difference, bootstrap_mean_interval, holm, metric_value,
                                   seed_summary)


def test_holm_against_a_hand_computed_example():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> max(0.06, 0.04)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # capped at 1 and monotone: 0.5 x2 = 1.0, then 0.6 x1 = 0.6 -> 1.0
    np.testing.assert_allclose(holm([0.6, 0.5]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.2]), [0.2])  # a family of one is not adjusted
    # eight ablations, one at p = 0.01: uncorrected "significant", Holm 0.08 is not
    adjusted = holm([0.01, 0.3, 0.5, 0.7, 0.2, 0.9, 0.6, 0.4])
    assert adjusted[0] == pytest.approx(0.08) and not adjusted[0] <= 0.05
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, 1.5])


def test_seed_summary_hand_computed():
    s = seed_summary([0.2, 0.4, 0.6])
    assert s.mean == pytest.approx(0.4) and s.sd == pytest.approx(0.2)  # sqrt((0.04 + 0 + 0.04) / 2)
    assert s.as_dict() == {"per_seed": [0.2, 0.4, 0.6], "mean": pytest.approx(0.4), "sd": pytest.approx(0.2),
                           "n_seeds": 3}
    assert seed_summary([0.7]).sd is None
    with pytest.raises(ValueError):
        seed_summary([])


def test_tpr_at_fpr_by_hand():
    # 1000 negatives scored 0..999: at fpr 1e-3 one false positive is allowed, so the cut is
    # the 2nd highest negative (998) and a positive counts when strictly above it
    neg = np.arange(1000.0)
    pos = np.array([999.5, 998.5, 998.0, 10.0])
    labels = np.r_[np.ones(4), np.zeros(1000)]
    scores = np.r_[pos, neg]
    assert metric_value(labels, scores, "tpr@fpr0.001") == 0.5
    assert metric_value(labels, scores, "tpr@fpr1e-4") == 0.25  # none allowed: above 999
    assert metric_value(labels, scores, "auc") == pytest.approx((1000 + 999 + 998.5 + 10.5) / 4000)


@pytest.mark.parametrize("decimals", [0, 1, 3])
def test_metrics_equal_evaluate_scores_with_ties(decimals):
    rng = np.random.default_rng(decimals)
    for _ in range(20):
        n = int(rng.integers(20, 3000))
        labels = (rng.random(n) < 0.3).astype(int)
        labels[:2] = [0, 1]
        scores = np.round(rng.normal(labels, 1.0), decimals)
        ref = evaluate_scores(labels, scores)
        for m in METRICS:
            assert metric_value(labels, scores, m) == pytest.approx(ref[m], abs=1e-12), m


def _config(rng, shifts, n_pos=300, n_neg=3000, ids=None):
    labels = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    ids = np.arange(n_pos + n_neg) if ids is None else ids
    return SeedScores.from_runs([(ids, labels, rng.normal(labels * s, 1.0)) for s in shifts])


def test_seed_scores_align_on_sample_id_and_refuse_other_rows():
    labels = np.array([1, 0, 0, 1])
    ids = np.array([10, 11, 12, 13])
    perm = np.array([2, 0, 3, 1])
    s = SeedScores.from_runs([(ids, labels, np.array([4.0, 1.0, 2.0, 3.0])),
                              (ids[perm], labels[perm], np.array([4.0, 1.0, 2.0, 3.0])[perm])])
    np.testing.assert_array_equal(s.scores[0], s.scores[1])
    with pytest.raises(ValueError, match="seed 1 scored other test rows"):
        SeedScores.from_runs([(ids, labels, np.zeros(4)), (ids + 1, labels, np.zeros(4))])


def test_bootstrap_of_a_configuration_against_itself_finds_nothing():
    a = _config(np.random.default_rng(0), [1.5, 1.5, 1.5])
    d = bootstrap_difference(a, a, "auc", n_boot=400)
    assert d.delta == 0 and d.paired and d.ci95[0] <= 0 <= d.ci95[1] and d.p_value > 0.2


def test_bootstrap_detects_a_real_difference_and_is_deterministic():
    rng = np.random.default_rng(1)
    a, b = _config(rng, [2.5, 2.5, 2.5]), _config(rng, [1.0, 1.0, 1.0])
    d = bootstrap_difference(a, b, "auc", n_boot=400, seed=3)
    assert d.delta > 0.1 and d.ci95[0] > 0 and d.p_value < 0.01
    assert bootstrap_difference(a, b, "auc", n_boot=400, seed=3) == d
    unpaired = _config(rng, [1.0], ids=np.arange(3300) + 10_000)
    assert not bootstrap_difference(a, unpaired, "auc", n_boot=50).paired


def test_the_seed_spread_widens_the_interval():
    """Seeds that disagree make the difference less certain than seeds that agree, at the
    same mean: the bootstrap resamples the seeds, not only the test rows."""
    rng = np.random.default_rng(2)
    b = _config(rng, [1.0])
    agree = _config(np.random.default_rng(5), [1.5, 1.5, 1.5, 1.5])
    disagree = _config(np.random.default_rng(5), [0.5, 2.5, 0.7, 2.3])
    w_agree = np.diff(bootstrap_difference(agree, b, "auc", n_boot=600).ci95)[0]
    w_disagree = np.diff(bootstrap_difference(disagree, b, "auc", n_boot=600).ci95)[0]
    assert w_disagree > 2 * w_agree
    spread = disagree.seed_values("auc")
    assert spread.sd > 0.1 and len(spread.values) == 4


def test_the_seed_mean_interval_contains_the_mean_and_narrows_with_agreeing_seeds():
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(200), np.zeros(2000)].astype(np.int8)
    base = np.r_[rng.normal(2, 1, 200), rng.normal(0, 1, 2000)]
    shift = lambda d: base + d * labels  # noqa: E731  (a seed that ranks the lenses higher or lower)
    spread = SeedScores.from_runs([(np.arange(2200), labels, shift(d)) for d in (-0.7, 0.0, 0.7)])
    alike = SeedScores.from_runs([(np.arange(2200), labels, base)] * 3)
    for k in ("tpr@fpr0.001", "auc"):
        lo, hi = bootstrap_mean_interval(spread, k, 400, seed=0)
        assert lo <= spread.seed_values(k).mean <= hi
    lo_s, hi_s = bootstrap_mean_interval(spread, "tpr@fpr0.001", 400, seed=0)
    lo_a, hi_a = bootstrap_mean_interval(alike, "tpr@fpr0.001", 400, seed=0)
    assert hi_a - lo_a < hi_s - lo_s  # seed variance widens it
    assert bootstrap_mean_interval(alike, "auc", 200, seed=3) == bootstrap_mean_interval(alike, "auc", 200, seed=3)
