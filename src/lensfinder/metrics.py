"""Low-FPR evaluation of lens scores that survives ties and saturation.

Conventions (documented because gen2's numbers depended on them):

* Scores are float32 logits. ``scores_as_stored`` reproduces other storage choices
  (e.g. gen2's sigmoid probabilities in bfloat16) so their effect can be measured.
* The ROC is scikit-learn's ``roc_curve`` in float64 with every threshold kept
  (``drop_intermediate=False``): one operating point per distinct score, all samples with
  that score on the same side. A tied block is never split and never interpolated.
* ``tpr@fpr=f`` is the largest TPR among operating points with FPR <= f;
  ``fpr@tpr=t`` is the smallest FPR among operating points with TPR >= t.
  If the negatives tied at the top score already exceed f x n_neg, tpr@fpr=f is 0: that is
  the gen2 cliff, and ``n_neg_tied_at_top`` says how many there are.
* FPRs below ``1 / n_neg`` cannot be resolved; ``min_resolvable_fpr`` is reported with
  every low-FPR number, and a target below it is flagged.
* Confidence intervals: Wilson score intervals on the TPR (binomial in the positives) at
  the chosen threshold.
* Lens Finding Challenge (Metcalf et al. 2019): TPR0 = TPR at the highest threshold with
  zero false positives, TPR10 = with at most ten.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve

from lensfinder.contracts import FPR_TARGETS, TPR_TARGETS, fpr_key, metric_key

PAUC_MAX_FPR = 1e-2


def scores_as_stored(logits, dtype: str = "logit_float32") -> np.ndarray:
    """The score each sample would have if stored as ``dtype``: ``logit_float32`` (gen3),
    or ``prob_<float32|float16|bfloat16>`` = sigmoid(logit) rounded to that precision
    (gen2 stored bf16 probabilities: every logit >= 6.24 becomes exactly 1.0). float64 out."""
    x = torch.from_numpy(np.array(logits, dtype=np.float32))  # a copy: inputs may be read-only Arrow buffers
    if dtype == "logit_float32":
        return x.double().numpy()
    kind, _, prec = dtype.partition("_")
    if kind != "prob" or prec not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"unknown score dtype {dtype!r}")
    return torch.sigmoid(x).to(getattr(torch, prec)).double().numpy()


def saturation_logit(dtype: str) -> float:
    """Smallest float32 logit whose sigmoid, stored as ``dtype``, is exactly 1.0 -- every
    larger logit ties with it (bfloat16: 6.24, float16: 8.32, float32: 16.64; inf for
    ``logit_float32``). Found by bisection on float32 logits, not quoted from a table."""
    if dtype == "logit_float32":
        return math.inf
    lo, hi = 0.0, 200.0
    if scores_as_stored(np.array([hi]), dtype)[0] != 1.0:
        return math.inf
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if scores_as_stored(np.array([mid]), dtype)[0] == 1.0 else (mid, hi)
    return float(np.float32(hi))


def roc(labels, scores):
    """(fpr, tpr, thresholds) of every distinct score, float64 (scikit-learn)."""
    return roc_curve(np.asarray(labels), np.asarray(scores, dtype=np.float64), drop_intermediate=False)


def tpr_at_fpr(fpr, tpr, target: float) -> float:
    """Largest TPR at an operating point with FPR <= ``target`` (0 if none)."""
    ok = fpr <= target + 1e-15
    return float(tpr[ok].max()) if ok.any() else 0.0


def fpr_at_tpr(fpr, tpr, target: float) -> float:
    """Smallest FPR at an operating point with TPR >= ``target``."""
    ok = tpr >= target - 1e-15
    return float(fpr[ok].min()) if ok.any() else 1.0


def partial_auc(fpr, tpr, max_fpr: float = PAUC_MAX_FPR) -> float:
    """Area under the ROC for FPR in [0, max_fpr], divided by max_fpr (1 = perfect)."""
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x = np.concatenate([fpr[:stop], [max_fpr]])
    y = np.concatenate([tpr[:stop], [np.interp(max_fpr, fpr, tpr)]])
    return float(np.trapezoid(y, x) / max_fpr)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) of a binomial proportion k/n, from
    scipy's ``binomtest(...).proportion_ci``; (0, 1) for n = 0."""
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def evaluate_scores(labels, scores, score_dtype: str = "logit_float32") -> dict:
    """Every metric of the history and the report for one set of scores.

    ``scores`` are what the model produced (float32 logits); ``score_dtype`` says how they
    are stored before ranking (see :func:`scores_as_stored`)."""
    labels = np.asarray(labels).astype(np.int8)
    s = scores_as_stored(scores, score_dtype)
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes to evaluate (positives={n_pos}, negatives={n_neg})")
    fpr, tpr, thr = roc(labels, s)
    top = s.max()
    out = {
        "n_pos": n_pos, "n_neg": n_neg, "score_dtype": score_dtype,
        "min_resolvable_fpr": 1.0 / n_neg,
        "auc": float(roc_auc_score(labels, s)),
        "pauc": partial_auc(fpr, tpr),
        "n_neg_tied_at_top": int(((s == top) & (labels == 0)).sum()),
        "n_pos_tied_at_top": int(((s == top) & (labels == 1)).sum()),
    }
    for f in FPR_TARGETS:
        t = tpr_at_fpr(fpr, tpr, f)
        key = metric_key(f)
        out[key] = t
        out[f"{key}_ci95"] = wilson_interval(round(t * n_pos), n_pos)
        out[f"{key}_resolvable"] = bool(f >= 1.0 / n_neg)
    for t in TPR_TARGETS:
        out[fpr_key(t)] = fpr_at_tpr(fpr, tpr, t)
    neg_sorted = np.sort(s[labels == 0])[::-1]
    for k, name in ((0, "tpr0"), (10, "tpr10")):
        # threshold just above the (k+1)-th highest negative: at most k false positives
        cut = neg_sorted[k] if k < n_neg else -np.inf
        out[name] = float((s[labels == 1] > cut).mean())
    return out


POPULATION_TPRS = (0.9, 0.5)
"""Operating points of the per-population FPRs: the thresholds that keep 90% / 50% of the
positives (resolvable at any test-set size, unlike FPR 1e-3)."""


def negatives_by_population(labels, logits, population) -> dict:
    """Which kind of negative fools the model: per population of the negatives, their count,
    float32-logit quantiles (p50, p90, max) and the fraction scored above the thresholds
    that keep POPULATION_TPRS of the positives (``fpr@tpr0.9`` ...), with Wilson 95%
    intervals. ``population``: one name per row (:mod:`lensfinder.sky.false_positives`)."""
    labels, logits = np.asarray(labels), np.asarray(logits, dtype=np.float32)
    population = np.asarray(population, dtype=str)
    pos = logits[labels == 1]
    ranked = np.sort(pos)[::-1]
    # the highest threshold that keeps at least a fraction t of the positives (score >= it)
    thresholds = {t: float(ranked[math.ceil(t * len(ranked)) - 1]) for t in POPULATION_TPRS} if len(pos) else {}
    out = {"thresholds": {f"tpr{t}": v for t, v in thresholds.items()}, "populations": {}}
    for name in sorted(set(population[labels == 0])):
        s = logits[(labels == 0) & (population == name)]
        entry = {"n": int(len(s)), "logit_p50": float(np.median(s)), "logit_p90": float(np.quantile(s, 0.9)),
                 "logit_max": float(s.max())}
        for t, thr in thresholds.items():
            k = int((s >= thr).sum())
            entry[f"fpr@tpr{t}"] = k / len(s)
            entry[f"fpr@tpr{t}_ci95"] = list(wilson_interval(k, len(s)))
        out["populations"][name] = entry
    return out
