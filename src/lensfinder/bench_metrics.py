"""Metrics an astronomer reads off the test bench (:mod:`lensfinder.bench`): rates at sky
prevalence, each population's false-positive rate, purity at a stated lens prevalence, and
the selection function.

**Sky prevalence.** The bench's sky rows are every LRG of its region, with the mock's
look-alike populations at their training rates. Each sky negative gets a weight so that a
population with a sky rate r_p (:data:`lensfinder.sky.false_positives.SKY_RATES`) carries a
fraction r_p of the total weight and the other populations (ordinary LRGs; ``unlabelled`` on
real data, where every weight is 1) share the rest in proportion to their counts. The
sky-prevalence FPR at a threshold is the weight of the sky negatives at or above it over
the total weight. Unlensed-source copies are a hard subset: never in that FPR, reported in
their own column with the look-alike populations.

**Purity** at lens prevalence pi (lenses per LRG): pi TPR / (pi TPR + (1 - pi) FPR); its
inverse is the number of candidates to inspect per lens found.

**Selection function**: recall of the bench's lenses at the threshold of a fixed
sky-prevalence FPR, binned by Einstein radius, arc S/N, source magnitude and lens
magnitude (quantile bins, so every bin holds lenses), each with its Wilson interval -- the
completeness that lens-search papers state (e.g. HOLISMOKES, Canameras et al. 2024).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from lensfinder.contracts import metric_key
from lensfinder.metrics import fpr_at_tpr, tpr_at_fpr, wilson_interval

BENCH_FPRS = (1e-4, 1e-3, 1e-2)
POPULATION_TPRS = (0.5, 0.9)
SELECTION_QUANTITIES = {"theta_e": "Einstein radius (arcsec)", "arc_snr": "arc S/N",
                        "src_mag_r": "source r (unlensed, AB)", "mag_r": "lens r (AB)"}
N_BINS = 5


def prevalence_weights(population, sky_rates: dict) -> np.ndarray:
    """(N,) float64 weights of sky negatives with populations ``population`` (N,): each
    population named in ``sky_rates`` (and present) gets that fraction of the total weight,
    the others share the remainder in proportion to their counts; the weights sum to N."""
    pops = np.asarray(population, dtype=object)
    n = len(pops)
    names, counts = np.unique(pops, return_counts=True) if n else (np.array([]), np.array([]))
    count = dict(zip(names.tolist(), counts.tolist()))
    rated = {p: float(r) for p, r in sky_rates.items() if count.get(p, 0) > 0}
    rest = [p for p in count if p not in rated]
    n_rest = sum(count[p] for p in rest)
    if n_rest == 0:  # only rated populations: their rates, renormalised
        total = sum(rated.values())
        shares = {p: r / total for p, r in rated.items()}
    else:
        shares = {**rated, **{p: (1.0 - sum(rated.values())) * count[p] / n_rest for p in rest}}
    w = np.ones(n)
    for p, share in shares.items():
        w[pops == p] = share * n / count[p]
    return w


def weighted_roc(labels, scores, neg_weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with each negative counted ``neg_weight`` times (positives
    once): fpr is the weight of the negatives scored >= threshold over their total weight."""
    labels = np.asarray(labels)
    w = np.where(labels == 1, 1.0, np.asarray(neg_weight, float))
    return roc_curve(labels, np.asarray(scores, float), sample_weight=w, drop_intermediate=False)


def threshold_at_fpr(fpr, thresholds, tpr, target: float) -> float:
    """The threshold of the operating point with the largest TPR at FPR <= ``target``."""
    ok = np.flatnonzero(fpr <= target + 1e-15)
    return float(thresholds[ok[np.argmax(tpr[ok])]]) if ok.size else math.inf


def threshold_at_tpr(pos_scores, target: float) -> float:
    """The highest threshold at which a fraction >= ``target`` of the positives is at or above it."""
    s = np.sort(np.asarray(pos_scores, float))[::-1]
    return float(s[max(int(math.ceil(target * len(s) - 1e-9)) - 1, 0)])


def sky_rates_table(labels, scores, neg_weight) -> dict:
    """AUC and TPR at each of :data:`BENCH_FPRS`, at sky prevalence, with each TPR's Wilson
    interval and whether the weights resolve that FPR (smallest weight / total <= FPR)."""
    labels, scores, nw = np.asarray(labels), np.asarray(scores, float), np.asarray(neg_weight, float)
    fpr, tpr, _ = weighted_roc(labels, scores, nw)
    n_pos = int((labels == 1).sum())
    neg_w = nw[labels == 0]
    w_all = np.where(labels == 1, 1.0, nw)
    out = {"n_pos": n_pos, "n_neg": int((labels == 0).sum()),
           "n_neg_effective": float(neg_w.sum() ** 2 / (neg_w ** 2).sum()),
           "min_resolvable_fpr": float(neg_w.min() / neg_w.sum()),
           "auc": float(roc_auc_score(labels, scores, sample_weight=w_all))}
    for f in BENCH_FPRS:
        t = tpr_at_fpr(fpr, tpr, f)
        out[metric_key(f)] = t
        out[f"{metric_key(f)}_ci95"] = list(wilson_interval(round(t * n_pos), n_pos))
        out[f"{metric_key(f)}_resolvable"] = bool(neg_w.max() / neg_w.sum() <= f)
    return out


def population_fprs(pos_scores, neg_scores, neg_population) -> dict:
    """{population: {"n", "fpr@tpr0.5", its interval, "fpr@tpr0.9", ...}}: the fraction of
    each population's negatives scored at or above the threshold keeping that fraction of
    the lenses (unweighted: a rate within the population), with Wilson intervals."""
    neg_scores, pops = np.asarray(neg_scores, float), np.asarray(neg_population, dtype=object)
    thr = {t: threshold_at_tpr(pos_scores, t) for t in POPULATION_TPRS}
    out = {}
    for p in sorted(set(pops.tolist())):
        s = neg_scores[pops == p]
        row = {"n": int(len(s))}
        for t, cut in thr.items():
            k = int((s >= cut).sum())
            row[f"fpr@tpr{t}"] = k / len(s)
            row[f"fpr@tpr{t}_ci95"] = list(wilson_interval(k, len(s)))
        out[p] = row
    return out


def purity_completeness(labels, scores, neg_weight, prevalence: float, max_points: int = 400) -> dict:
    """Purity vs completeness at ``prevalence`` lenses per LRG: the curve (at most
    ``max_points`` operating points) and, at completeness 0.5 and 0.9, the sky FPR, the
    purity, candidates to inspect per lens found and candidates per million LRGs."""
    fpr, tpr, _ = weighted_roc(labels, scores, neg_weight)
    sel = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    out = {"prevalence": prevalence, "completeness": tpr[sel].tolist(),
           "purity": [_purity(t, f, prevalence) for t, f in zip(tpr[sel], fpr[sel])]}
    for t in POPULATION_TPRS:
        f = fpr_at_tpr(fpr, tpr, t)
        p = _purity(t, f, prevalence)
        out[f"at_completeness_{t}"] = {"sky_fpr": f, "purity": p,
                                       "candidates_per_lens": (1.0 / p) if p > 0 else math.inf,
                                       "candidates_per_million_lrgs": 1e6 * (prevalence * t + (1 - prevalence) * f)}
    return out


def _purity(tpr: float, fpr: float, prevalence: float) -> float:
    found = prevalence * tpr
    return float(found / (found + (1 - prevalence) * fpr)) if found + fpr > 0 else 1.0


def selection_function(pos_scores, pos_columns: dict, threshold: float, n_bins: int = N_BINS) -> dict:
    """Recall (score >= ``threshold``) of the lenses binned by each quantity of
    ``pos_columns`` ({name: (n_pos,) values}), in ``n_bins`` quantile bins; per bin the
    edges, n, recall and its Wilson interval. Rows with a non-finite value are left out
    (counted)."""
    found = np.asarray(pos_scores, float) >= threshold
    out = {}
    for name, values in pos_columns.items():
        v = np.asarray(values, float)
        ok = np.isfinite(v)
        edges = np.unique(np.quantile(v[ok], np.linspace(0, 1, n_bins + 1))) if ok.any() else np.array([])
        bins = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            inb = ok & (v >= lo) & ((v < hi) if hi < edges[-1] else (v <= hi))
            k, n = int(found[inb].sum()), int(inb.sum())
            bins.append({"lo": float(lo), "hi": float(hi), "n": n, "recall": k / n if n else None,
                         "ci95": list(wilson_interval(k, n))})
        out[name] = {"label": SELECTION_QUANTITIES.get(name, name), "bins": bins, "n_missing": int((~ok).sum())}
    return out


def bench_metrics(labels, scores, kind, population, pos_columns: dict, sky_rates: dict, prevalence: float,
                  selection_fpr: float) -> dict:
    """Every bench metric of one run. Arrays are per bench row: ``labels`` (N,) 0/1,
    ``scores`` (N,) float32 logits, ``kind`` (N,) 0 sky / 1 lens / 2 unlensed,
    ``population`` (N,); ``pos_columns``: {quantity: values of the lens rows, in row order}."""
    labels, scores, kind = np.asarray(labels), np.asarray(scores, float), np.asarray(kind)
    population = np.asarray(population, dtype=object)
    lens, sky, hard = kind == 1, kind == 0, kind == 2
    rows, nw = bench_rows_for_comparison(kind, population, sky_rates)
    w = nw[kind[rows] == 0]  # the sky rows' weights
    lab, sc = labels[rows], scores[rows]
    fpr, tpr, thr = weighted_roc(lab, sc, nw)
    cut = threshold_at_fpr(fpr, thr, tpr, selection_fpr)
    neg = sky | hard
    return {
        "sky_prevalence": sky_rates_table(lab, sc, nw),
        "weights": {p: float(w[population[sky] == p][0]) for p in sorted(set(population[sky].tolist()))},
        "sky_rates": dict(sky_rates),
        "populations": population_fprs(scores[lens], scores[neg], population[neg]),
        "purity": purity_completeness(lab, sc, nw, prevalence),
        "selection_function": {"sky_fpr": selection_fpr, "threshold_logit": cut,
                               "recall": float((scores[lens] >= cut).mean()),
                               "by": selection_function(scores[lens], pos_columns, cut)},
    }


def bench_rows_for_comparison(kind, population, sky_rates: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weight): which bench rows enter the comparison's sky-prevalence metrics (lenses
    and sky rows, not the hard subset) and each row's weight (1 for lenses)."""
    kind, population = np.asarray(kind), np.asarray(population, dtype=object)
    rows = kind != 2
    weight = np.ones(len(kind))
    weight[kind == 0] = prevalence_weights(population[kind == 0], sky_rates)
    return rows, weight[rows]

