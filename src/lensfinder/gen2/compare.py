"""The gen2-vs-gen3 comparison: per-run epoch tables and a one-factor-at-a-time summary.

Reads each run's ``history.json`` (validation, per epoch), ``metrics.json`` (its own
dataset's test split, the checkpoint the run kept) and, for every seed the run names, its
test ``scores.parquet`` and its scores on the **test bench** (``bench_scores.parquet``,
:mod:`lensfinder.bench`). The main table is on the bench: every run scored on the same
rows (lenses and every LRG of the bench region, negatives weighted to sky prevalence), so
each difference is paired. A configuration's numbers are the mean over its seeds, with the
per-seed values and their spread. Every difference from the baseline carries a 95% interval
and p-value from a bootstrap over seeds and bench rows (``lensfinder.replicates``), and is
called significant only when its Holm-adjusted p-value, over every difference of the table,
is below 0.05 and Newcombe's interval (bench rows, first seed) excludes 0 -- so a factor
whose effect is inside the noise of this run's seeds and sample reads as undecided. The
run's own test-split numbers stay beside it (``own_test``), as a secondary column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from lensfinder import pages, plots
from lensfinder.bench_metrics import bench_rows_for_comparison
from lensfinder.contracts import FPR_KEYS, TPR_KEYS, Comparison, History, Metrics, check, read
from lensfinder.gen2.ties import find_cliffs
from lensfinder.metrics import wilson_interval
from lensfinder.replicates import ALPHA, N_BOOT, SeedScores, bootstrap_difference, bootstrap_mean_interval, holm
from lensfinder.tables import write_json

SEED_METRICS = (*TPR_KEYS, "auc")

EPOCH_KEYS = (*TPR_KEYS, FPR_KEYS[-1], "n_neg_tied_at_top", "auc")


def newcombe_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% interval of p1 - p2 for independent binomials (Newcombe 1998, method 10:
    hybrid of the two Wilson score intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def epoch_table(history: dict) -> list[dict]:
    """One row per epoch: train loss, duplication factor, and the validation metrics in
    the run's stored score dtype and (``f32_`` prefix) as float32 logits."""
    rows = []
    for e in history["epochs"]:
        f32 = e.get("logit_float32", e)
        rows.append({"epoch": e["epoch"], "n_pos": e["n_pos"], "train_loss": e["train_loss"], "lr": e["lr"],
                     "duplication_factor": e["duplication_factor"], "score_dtype": e["score_dtype"],
                     **{k: e[k] for k in EPOCH_KEYS}, **{f"f32_{k}": f32[k] for k in EPOCH_KEYS}})
    return rows


def _as_stored(metrics: dict) -> tuple[str, dict]:
    """(dtype, metrics) as the run itself reported them on the test split."""
    for k, v in metrics.items():
        if k.startswith("metrics_as_"):
            return k[len("metrics_as_"):], v
    return "logit_float32", metrics["metrics"]


def read_seed_logits(paths) -> list[tuple]:
    """(sample_id, label, logit) of each seed's test ``scores.parquet``."""
    runs = []
    for p in paths:
        t = pq.read_table(p, columns=["sample_id", "label", "logit"])
        runs.append((t["sample_id"].to_numpy(), t["label"].to_numpy(), t["logit"].to_numpy()))
    return runs


def read_bench_logits(paths, sky_rates: dict) -> tuple[list[tuple], tuple[np.ndarray, np.ndarray]]:
    """(per seed (sample_id, label, logit) of the bench rows that enter the sky-prevalence
    metrics -- lenses and sky rows --, (sample_id, weight) of those rows)."""
    runs, weight = [], None
    for p in paths:
        t = pq.read_table(p, columns=["sample_id", "label", "logit", "bench_kind", "population"])
        rows, w = bench_rows_for_comparison(t["bench_kind"].to_numpy(), t["population"].to_numpy(zero_copy_only=False),
                                            sky_rates)
        sid = t["sample_id"].to_numpy()[rows]
        runs.append((sid, t["label"].to_numpy()[rows], t["logit"].to_numpy()[rows]))
        if weight is None:
            weight = (sid, w)
    return runs, weight


def first_seed_counts(seeds: SeedScores) -> dict:
    """The counts and first-seed values the summary row and Newcombe's interval use."""
    w_pos, w_neg = seeds.class_weights()
    neg = seeds.scores[0][seeds.labels == 0]
    return {"n_pos": int(len(w_pos)), "n_neg": int(len(w_neg)), "min_resolvable_fpr": float(w_neg.max() / w_neg.sum()),
            "n_neg_tied_at_top": int((neg == seeds.scores[0].max()).sum()),
            **{k: seeds.seed_values(k).values[0] for k in SEED_METRICS}}


def own_test_view(m: dict, own: SeedScores) -> dict:
    """The run's own test-split numbers (secondary): counts and the seed means."""
    return {"n_pos": m["n_pos"], "n_neg": m["n_neg"], **{k: own.seed_values(k).mean for k in SEED_METRICS}}


def summary_row(label: str, run: str, role: str, factor, dtype: str, m: dict, table: list[dict],
                seeds: SeedScores, base: tuple[dict, SeedScores] | None, dataset: str | None = None) -> dict:
    """One line of the summary table: test metrics as the mean over seeds (per-seed values
    and spread beside), differences from the baseline with their bootstrap interval and
    p-value (verdicts are set by :func:`holm_verdicts`), and the validation cliffs of the
    run's history in that dtype. ``m``: the first seed's test metrics (counts, ties)."""
    prefix = "" if dtype == table[0]["score_dtype"] else "f32_"
    n_pos = m["n_pos"]
    row = {"label": label, "run": run, "role": role, "factor": factor, "score_dtype": dtype, "dataset": dataset,
           "n_pos": n_pos, "n_neg": m["n_neg"], "min_resolvable_fpr": m["min_resolvable_fpr"],
           "n_neg_tied_at_top": m["n_neg_tied_at_top"], "n_seeds": int(seeds.scores.shape[0]),
           "epochs_run": len(table), "duplication_factor": table[-1]["duplication_factor"],
           "val_cliff_epochs": {k: [table[i]["epoch"] for i in find_cliffs([r[prefix + k] for r in table],
                                                                          table[0]["n_pos"])]
                                for k in TPR_KEYS}}
    for k in SEED_METRICS:
        per_seed = seeds.seed_values(k)
        row[k], row[f"{k}_seeds"] = per_seed.mean, per_seed.as_dict()
    for k in TPR_KEYS:
        # the seed mean's interval: seeds and test rows resampled (one seed: test rows only)
        row[f"{k}_ci95"] = list(bootstrap_mean_interval(seeds, k, N_BOOT, seed=1))
        if base is not None:
            base_m, base_seeds = base
            d = bootstrap_difference(seeds, base_seeds, k, N_BOOT, seed=0)
            row[f"delta_{k}"] = d.delta
            row[f"delta_{k}_ci95"] = list(d.ci95)
            row[f"delta_{k}_p"] = d.p_value
            row[f"delta_{k}_paired"] = d.paired
            row[f"delta_{k}_newcombe_ci95"] = list(newcombe_interval(
                round(m[k] * n_pos), n_pos, round(base_m[k] * base_m["n_pos"]), base_m["n_pos"]))
    return row


def holm_verdicts(summary: list[dict]) -> None:
    """Per TPR metric, Holm-adjust the p-values of every difference in the table (one
    family) and call a difference significant when the adjusted p is below ``ALPHA`` *and*
    Newcombe's interval excludes 0: with a handful of test positives every bootstrap draw
    is alike and its p-value is falsely small, which the binomial interval guards against."""
    for k in TPR_KEYS:
        rows = [s for s in summary if f"delta_{k}_p" in s]
        for s, p in zip(rows, holm([s[f"delta_{k}_p"] for s in rows])):
            lo, hi = s[f"delta_{k}_newcombe_ci95"]
            s[f"delta_{k}_p_holm"] = float(p)
            s[f"delta_{k}_significant"] = bool(p < ALPHA and (lo > 0 or hi < 0))


def compare_runs(rows: list[dict], inputs: dict, out_json, out_html, out_png, configs: dict | None = None,
                 sky_rates: dict | None = None) -> dict:
    """Rule body of ``compare``. ``rows``: :func:`lensfinder.gen2.ablations.comparison_rows`;
    ``inputs``: {run: {"history": path, "metrics": path, "scores": [path per seed],
    "bench_scores": [path per seed], "bench_metrics": [path per seed]}};
    ``configs``: {run: run config}; ``sky_rates``: the bench's (population -> sky rate)."""
    runs = {}
    for r in rows:
        hist = read(History, inputs[r["run"]]["history"])
        metrics = read(Metrics, inputs[r["run"]]["metrics"])
        if metrics.get("fingerprint") != hist.get("fingerprint"):
            raise RuntimeError(f"{inputs[r['run']]['metrics']} (configuration {metrics.get('fingerprint')}) does not come "
                               f"from the training of {inputs[r['run']]['history']} ({hist.get('fingerprint')}): "
                               f"rerun evaluate for run {r['run']}")
        table = epoch_table(hist)
        runs[r["run"]] = {**r, "epochs": table, "best_epoch": hist.get("best_epoch"),
                          "stopped_early": hist.get("stopped_early"), "checkpoint_epoch": metrics.get("checkpoint_epoch"),
                          "test": metrics, "sources": inputs[r["run"]],
                          "bench": read_json_file(inputs[r["run"]]["bench_metrics"][0]),
                          "config": (configs or {}).get(r["run"], {})}
    summary = _summary(rows, runs, inputs, sky_rates or {})
    out = {"baseline": rows[0]["run"], "reference": rows[-1]["run"], "summary": summary, "runs": runs,
           "statistics": {"n_boot": N_BOOT, "alpha": ALPHA, "correction": "holm", "family": "every difference "
                          "from the baseline in the summary, per TPR metric", "seeds": {
                              r["run"]: len(inputs[r["run"]]["scores"]) for r in rows}}}
    check(Comparison, out, str(out_json))
    write_json(out, out_json)
    pages.write_page(out_html, "comparison.html.j2", tpr_keys=TPR_KEYS, summary=[_summary_view(s) for s in summary],
                     runs=[_run_view(name, info) for name, info in runs.items()],
                     populations=sorted(summary[0]["bench_populations"]))
    plots.comparison_summary(summary, out_png)
    return out


def read_json_file(path) -> dict:
    return json.loads(Path(path).read_text())


def _summary(rows: list[dict], runs: dict, inputs: dict, sky_rates: dict) -> list[dict]:
    """The summary rows on the bench (and each stored-dtype run again as float32 logits),
    with verdicts and each run's own test-split numbers beside."""
    bench = {r["run"]: read_bench_logits(inputs[r["run"]]["bench_scores"], sky_rates) for r in rows}
    own = {r["run"]: read_seed_logits(inputs[r["run"]]["scores"]) for r in rows}  # each file read once
    seed_scores = {}

    def seeds(run: str, dtype: str) -> SeedScores:
        if (run, dtype) not in seed_scores:  # the baseline's is shared by every row
            seed_scores[run, dtype] = SeedScores.from_runs(bench[run][0], dtype, bench[run][1])
        return seed_scores[run, dtype]

    base_run = rows[0]["run"]
    base_dtype, _ = _as_stored(runs[base_run]["test"])
    base_seeds = seeds(base_run, base_dtype)
    base = (first_seed_counts(base_seeds), base_seeds)
    summary = []
    for r in rows:
        info = runs[r["run"]]
        dtype, m = _as_stored(info["test"])
        label = {"baseline": f"{r['run']} (all fixes)", "reference": f"{r['run']} (every gen2 setting)"}.get(
            r["role"], f"{base_run} + {r['factor']}")
        ds = info["config"].get("dataset")
        for role, dt, lab in ((r["role"], dtype, label),
                              (r["role"] + "_float32", "logit_float32",
                               f"{r['run']} without the {dtype} cast (same weights, float32 logits)")):
            if role != r["role"] and dtype == "logit_float32":
                continue  # the float32 row only where a run stores another dtype: the cast alone removed
            s_ = seeds(r["run"], dt)
            row = summary_row(lab, r["run"], role, r["factor"] if role == r["role"] else "cast removed", dt,
                              first_seed_counts(s_), info["epochs"], s_,
                              None if role == "baseline" else base, ds)
            own_m = m if dt == dtype else info["test"]["metrics"]
            row["own_test"] = own_test_view(own_m, SeedScores.from_runs(own[r["run"]], dt))
            row["bench_populations"] = info["bench"]["populations"]
            summary.append(row)
    holm_verdicts(summary)
    return summary


# --------------------------------------------------------------------------- page
def _summary_view(s: dict) -> dict:
    """A summary row plus its validation cliffs as one line of text."""
    cliffs = "; ".join(f"{k}: epoch {', '.join(map(str, v))}" for k, v in s["val_cliff_epochs"].items() if v)
    return {**s, "cliffs_text": cliffs or "none"}


def _cell(key: str, v) -> str:
    if key == "auc":
        return f"{v:.3f}"
    return str(v) if key == "n_neg_tied_at_top" else pages.pct(v)


def _run_view(name: str, info: dict) -> dict:
    """One run's validation table: per epoch, each column's text and whether it is a cliff."""
    epochs = info["epochs"]
    dtype = epochs[0]["score_dtype"]
    cols = [("", k) for k in EPOCH_KEYS] + ([("f32_", k) for k in EPOCH_KEYS] if dtype != "logit_float32" else [])
    cliffs = {(p, k): set(find_cliffs([e[p + k] for e in epochs], epochs[0]["n_pos"]))
              for p, k in cols if k in TPR_KEYS}
    rows = [{**e, "kept": e["epoch"] == info.get("checkpoint_epoch"),
             "cells": [{"text": _cell(k, e[p + k]), "cliff": i in cliffs.get((p, k), ())} for p, k in cols]}
            for i, e in enumerate(epochs)]
    return {"name": name, "dtype": dtype, "epochs": rows,
            "columns": [{"title": f"{k}{' (f32)' if p else ''}"} for p, k in cols]}
