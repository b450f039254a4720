"""Several training seeds of one configuration, and verdicts that survive them.

At the demo's size the training seed moves a low-FPR TPR by more than the test sample's
binomial noise, so a comparison of two configurations trained once each says little.
This module gives

* :func:`seed_summary` -- per-seed values, their mean and sample standard deviation;
* :func:`bootstrap_difference` -- the difference of two configurations' seed-mean metric
  with a 95% interval and a two-sided p-value from a bootstrap that resamples *both* the
  seeds (with replacement, within each configuration) and the test sample (positives and
  negatives separately; the same draw for both configurations when they were scored on the
  same test rows, i.e. a paired comparison). This is the two-level ("cases and
  replicates") bootstrap of Davison & Hinkley 1997, sec. 3.8, used for ML comparisons by
  Bouthillier et al. 2021 (MLSys, "Accounting for variance in ML benchmarks");
* :func:`bootstrap_mean_interval` -- the same bootstrap's 95% interval of one
  configuration's seed mean;
* :func:`holm` -- Holm's (1979) step-down adjustment of a family of p-values, so that a
  table of eight ablations does not hand out "significant" verdicts by chance.

Metrics are the tie-aware ones of :mod:`lensfinder.metrics`: ``tpr@fpr=f`` counts the
positives scored strictly above the (k+1)-th highest negative, k = floor(f x n_neg) --
the same number :func:`lensfinder.metrics.evaluate_scores` reports (tested) -- written
here on sorted arrays because the bootstrap evaluates it thousands of times. Negatives may
carry weights (the test bench's sky-prevalence weights, :mod:`lensfinder.bench_metrics`):
then the threshold is the highest negative score above which the negatives weigh at most
f x their total weight, the number :func:`lensfinder.bench_metrics.sky_rates_table` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lensfinder.contracts import FPR_TARGETS, metric_key
from lensfinder.metrics import scores_as_stored

N_BOOT = 2000
ALPHA = 0.05


@dataclass(frozen=True)
class SeedSummary:
    """One metric over the seeds of one configuration."""

    values: tuple[float, ...]  # per seed, in the order of the run's ``seeds``
    mean: float
    sd: float | None  # sample standard deviation (ddof=1); None with one seed

    def as_dict(self) -> dict:
        return {"per_seed": list(self.values), "mean": self.mean, "sd": self.sd, "n_seeds": len(self.values)}


def seed_summary(values) -> SeedSummary:
    """Mean and sample standard deviation of one metric over seeds."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no seeds to summarise")
    return SeedSummary(tuple(float(x) for x in v), float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else None)


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values, in the input order: sorted ascending, p_(j) x (m - j + 1)
    (j from 1), made non-decreasing, capped at 1. Reject hypothesis i at level a when
    adjusted[i] <= a; this controls the family-wise error rate at a."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return p
    if np.any((p < 0) | (p > 1) | ~np.isfinite(p)):
        raise ValueError(f"p-values must be in [0, 1]: {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


# --------------------------------------------------------------------------- metrics
METRICS = (*(metric_key(f) for f in FPR_TARGETS), "auc")


@dataclass(frozen=True)
class _Sorted:
    """One seed's test scores prepared for weighted metrics: negatives ascending, and for
    each positive the range of negatives below / tied with it."""

    neg_asc: np.ndarray  # (n_neg,)
    order: np.ndarray  # argsort of the negatives (ascending)
    pos: np.ndarray  # (n_pos,)
    below: np.ndarray  # (n_pos,) negatives strictly below each positive
    upto: np.ndarray  # (n_pos,) negatives below or tied

    @classmethod
    def of(cls, pos: np.ndarray, neg: np.ndarray) -> "_Sorted":
        order = np.argsort(neg, kind="stable")
        a = neg[order]
        return cls(a, order, pos, np.searchsorted(a, pos, "left"), np.searchsorted(a, pos, "right"))

    def metric(self, metric: str, w_pos: np.ndarray, w_neg: np.ndarray) -> float:
        """``metric`` with each positive / negative counted w times (bootstrap counts; all
        ones gives the plain metric)."""
        n_pos, n_neg = w_pos.sum(), w_neg.sum()
        cum = np.concatenate([[0], np.cumsum(w_neg[self.order])])  # cum[i]: weight of the i lowest
        if metric == "auc":
            less, tied = cum[self.below], cum[self.upto] - cum[self.below]
            return float((w_pos * (less + 0.5 * tied)).sum() / (n_pos * n_neg))
        for f in FPR_TARGETS:
            if metric == metric_key(f):
                allowed = f * n_neg + 1e-9  # integer weights: above > allowed <=> above >= floor(f n) + 1
                if allowed >= n_neg:
                    return 1.0
                # the last sorted position i at or above which the negatives still weigh
                # more than allowed (integer weights: the (k+1)-th highest negative)
                above = n_neg - cum  # weight of negatives at sorted position >= i
                i = int(np.flatnonzero(above[:-1] > allowed)[-1])
                cut = self.neg_asc[i]
                return float(w_pos[self.pos > cut].sum() / n_pos)
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")


def metric_value(labels, scores, metric: str) -> float:
    """``metric`` (``tpr@fpr=...`` tie-aware, or ``auc``) of one set of scores."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    pos, neg = scores[labels == 1], scores[labels == 0]
    return _Sorted.of(pos, neg).metric(metric, np.ones(len(pos)), np.ones(len(neg)))


# --------------------------------------------------------------------------- bootstrap
@dataclass(frozen=True)
class SeedScores:
    """Test-split scores of one configuration's seeds, aligned on ``sample_id``.

    ``scores`` (n_seeds, n_samples) as stored (see ``metrics.scores_as_stored``);
    ``weight`` (n_samples,): each row's weight (1 for positives; None: all 1)."""

    sample_id: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    weight: np.ndarray | None = None

    @classmethod
    def from_runs(cls, runs, score_dtype: str = "logit_float32", weight=None) -> "SeedScores":
        """``runs``: one (sample_id, label, logit) triple of arrays per seed. Every seed
        must have scored the same test rows (the same dataset). ``weight``: optional
        (sample_id, weight) arrays covering exactly those rows (negatives' weights)."""
        ids0 = np.sort(np.asarray(runs[0][0]))
        rows, labels = [], None
        for i, (sid, lab, logit) in enumerate(runs):
            sid = np.asarray(sid)
            order = np.argsort(sid, kind="stable")
            if not np.array_equal(sid[order], ids0):
                raise ValueError(f"seed {i} scored other test rows than seed 0: the seeds of one configuration "
                                 "must share its dataset")
            lab_i = np.asarray(lab)[order].astype(np.int8)
            if labels is not None and not np.array_equal(lab_i, labels):
                raise ValueError(f"seed {i}: labels differ from seed 0's for the same sample ids")
            labels = lab_i
            rows.append(scores_as_stored(np.asarray(logit)[order], score_dtype))
        w = None
        if weight is not None:
            wid, wv = (np.asarray(a) for a in weight)
            o = np.argsort(wid, kind="stable")
            if not np.array_equal(wid[o], ids0):
                raise ValueError("weights must be given for exactly the scored rows")
            w = np.asarray(wv, np.float64)[o]
            w[labels == 1] = 1.0
        return cls(ids0, labels, np.stack(rows), w)

    def class_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(positives' weights, negatives' weights), all 1 without ``weight``."""
        pos, neg = self.labels == 1, self.labels == 0
        if self.weight is None:
            return np.ones(int(pos.sum())), np.ones(int(neg.sum()))
        return self.weight[pos], self.weight[neg]

    @cached_property
    def prepared(self) -> list[_Sorted]:
        """Each seed's scores sorted once, for every metric and bootstrap draw."""
        pos, neg = self.labels == 1, self.labels == 0
        return [_Sorted.of(s[pos], s[neg]) for s in self.scores]

    def seed_values(self, metric: str) -> SeedSummary:
        """``metric`` of each seed on the full test split."""
        w_pos, w_neg = self.class_weights()
        return seed_summary([p.metric(metric, w_pos, w_neg) for p in self.prepared])


@dataclass(frozen=True)
class Difference:
    """mean over A's seeds minus mean over B's seeds, with the bootstrap's 95% interval
    and two-sided p-value."""

    metric: str
    delta: float
    ci95: tuple[float, float]
    p_value: float
    paired: bool
    n_boot: int


def bootstrap_difference(a: SeedScores, b: SeedScores, metric: str, n_boot: int = N_BOOT,
                         seed: int = 0) -> Difference:
    """Compare configuration ``a`` with ``b`` on ``metric`` (see the module docstring).
    A draw is bootstrap *counts* over the test rows (positives and negatives separately)
    and over the seeds, so it costs O(n) with no re-sorting; the draws come from ``seed``
    alone, so a rerun gives the same interval."""
    paired = np.array_equal(a.sample_id, b.sample_id)
    observed = a.seed_values(metric).mean - b.seed_values(metric).mean
    rng = np.random.default_rng(seed)
    d = np.empty(n_boot)
    for j in range(n_boot):
        ca = _counts(rng, a.labels)
        wa = _weighted(ca, a)
        wb = _weighted(ca, b) if paired else _weighted(_counts(rng, b.labels), b)
        d[j] = _seed_mean(a.prepared, metric, wa, rng) - _seed_mean(b.prepared, metric, wb, rng)
    lo, hi = np.percentile(d, [2.5, 97.5])
    p = min(1.0, 2 * min((1 + (d <= 0).sum()) / (n_boot + 1), (1 + (d >= 0).sum()) / (n_boot + 1)))
    return Difference(metric, float(observed), (float(lo), float(hi)), float(p), bool(paired), n_boot)


def bootstrap_mean_interval(a: SeedScores, metric: str, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of configuration ``a``'s seed-mean ``metric`` from the same
    two-level bootstrap (seeds and test rows resampled): the interval that belongs beside
    the seed mean (a Wilson interval of one seed need not even contain it)."""
    rng = np.random.default_rng(seed)
    draws = [_seed_mean(a.prepared, metric, _weighted(_counts(rng, a.labels), a), rng) for _ in range(n_boot)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def _counts(rng, labels) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap counts of the positives and of the negatives (stratified resampling)."""
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    return (np.bincount(rng.integers(0, n_pos, n_pos), minlength=n_pos).astype(np.float64),
            np.bincount(rng.integers(0, n_neg, n_neg), minlength=n_neg).astype(np.float64))


def _weighted(counts, s: SeedScores) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap counts times the rows' own weights."""
    w_pos, w_neg = s.class_weights()
    return counts[0] * w_pos, counts[1] * w_neg


def _seed_mean(prep: list[_Sorted], metric: str, w, rng) -> float:
    """Seed-mean metric with the seeds resampled with replacement."""
    seeds = rng.integers(0, len(prep), len(prep))
    return float(np.mean([prep[s].metric(metric, *w) for s in seeds]))
