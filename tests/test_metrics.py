import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lensfinder.metrics import evaluate_scores, fpr_at_tpr, roc, scores_as_stored, tpr_at_fpr, wilson_interval


def gen2_like_scores(seed=0):
    """65,090 negatives and 62,910 positives as in the gen2 validation set, after
    overfitting: logits far apart, and 7 memorised negatives with large logits."""
    rng = np.random.default_rng(seed)
    neg = rng.normal(-9, 3, 65_090)
    neg[:7] = rng.uniform(7, 12, 7)
    pos = rng.normal(12, 4, 62_910)
    return np.r_[np.zeros(65_090), np.ones(62_910)].astype(np.int8), np.r_[neg, pos].astype(np.float32)


def test_gen2_cliff_from_first_principles():
    labels, logits = gen2_like_scores()
    as_bf16 = evaluate_scores(labels, logits, "prob_bfloat16")
    as_logit = evaluate_scores(labels, logits, "logit_float32")
    # bf16 sigmoid saturates: the memorised negatives tie with most positives at exactly 1.0
    assert as_bf16["n_neg_tied_at_top"] == 7 > 1e-4 * 65_090
    assert as_bf16["tpr@fpr1e-4"] == 0.0
    # the same network outputs ranked as float32 logits: no ties, no cliff
    assert as_logit["n_neg_tied_at_top"] == 0
    assert as_logit["tpr@fpr1e-4"] > 0.7
    # the saturation signature of the request: fpr@tpr flat across TPR targets
    assert as_bf16["fpr@tpr0.50"] == as_bf16["fpr@tpr0.70"] == as_bf16["fpr@tpr0.85"] > 0


@pytest.mark.parametrize("dtype, threshold", [("prob_bfloat16", 6.24), ("prob_float16", 8.32), ("prob_float32", 16.64)])
def test_sigmoid_saturation_thresholds_of_design(dtype, threshold):
    below = scores_as_stored(np.float32([threshold - 0.1]), dtype)[0]
    above = scores_as_stored(np.float32([threshold + 0.02]), dtype)[0]
    assert below < 1.0 and above == 1.0


def test_agrees_with_brute_force_and_sklearn_on_heavily_tied_scores():
    rng = np.random.default_rng(1)
    labels = (rng.random(3000) < 0.4).astype(np.int8)
    scores = rng.integers(0, 12, 3000) + 3 * labels  # 12-15 distinct values: big tied blocks
    fpr, tpr, thr = roc(labels, scores)
    assert evaluate_scores(labels, scores)["auc"] == pytest.approx(roc_auc_score(labels, scores))
    pos, neg = scores[labels == 1], scores[labels == 0]
    for t in np.unique(scores):  # every operating point is a whole tied block
        bf_tpr, bf_fpr = (pos >= t).mean(), (neg >= t).mean()
        i = np.flatnonzero(thr == t)[0]
        assert (tpr[i], fpr[i]) == pytest.approx((bf_tpr, bf_fpr))
    for f in (0.001, 0.01, 0.1, 0.3):
        brute = max([(pos >= t).mean() for t in np.unique(scores) if (neg >= t).mean() <= f] + [0.0])
        assert tpr_at_fpr(fpr, tpr, f) == pytest.approx(brute)
    for t_target in (0.5, 0.85):
        brute = min((neg >= t).mean() for t in np.unique(scores) if (pos >= t).mean() >= t_target)
        assert fpr_at_tpr(fpr, tpr, t_target) == pytest.approx(brute)


def test_lens_finding_challenge_tpr0_tpr10_and_resolvability():
    labels = np.r_[np.zeros(100), np.ones(10)].astype(np.int8)
    scores = np.r_[np.arange(100), 95.5 + np.arange(10)].astype(np.float32)
    m = evaluate_scores(labels, scores)
    assert m["tpr0"] == pytest.approx(0.6)  # positives above the top negative (99)
    assert m["tpr10"] == 1.0  # at most 10 false positives: threshold above negative #11 (89)
    assert m["min_resolvable_fpr"] == 0.01 and not m["tpr@fpr0.001_resolvable"]
    lo, hi = m["tpr@fpr0.001_ci95"]
    assert lo <= m["tpr@fpr0.001"] <= hi


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo < 0.21
    assert wilson_interval(0, 10)[0] == 0.0
    # Wilson, not Wald: Newcombe (1998) Table I, 0/10 -> [0, 0.2775] and 1/29 -> [0.0061, 0.1718]
    # (Wald gives [0, 0] and [-0.032, 0.101])
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)
    with pytest.raises(ValueError):
        evaluate_scores(np.ones(5), np.ones(5))
