"""The gen2-vs-gen3 comparison: per-run epoch tables and a one-factor-at-a-time summary.

Reads each run's ``history.json`` (validation, per epoch), ``metrics.json`` (test split,
the checkpoint the run kept) and the test ``scores.parquet`` of every seed the run names.
A configuration's test numbers are the mean over its seeds, with the per-seed values and
their spread. Every difference from the baseline carries a 95% interval and p-value from
a bootstrap over seeds and test rows (``lensfinder.replicates``), and is called
significant only when its Holm-adjusted p-value, over every difference of the table, is
below 0.05 and Newcombe's interval (test rows only, first seed) excludes 0 -- so a factor
whose effect is inside the noise of this run's seeds and sample reads as undecided.
"""

from __future__ import annotations

import math

import pyarrow.parquet as pq

from lensfinder import pages, plots
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


def compare_runs(rows: list[dict], inputs: dict, out_json, out_html, out_png, configs: dict | None = None) -> dict:
    """Rule body of ``compare``. ``rows``: :func:`lensfinder.gen2.ablations.comparison_rows`;
    ``inputs``: {run: {"history": path, "metrics": path, "scores": [path per seed]}};
    ``configs``: {run: run config}."""
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
                          "config": (configs or {}).get(r["run"], {})}
    summary = _summary(rows, runs, inputs)
    out = {"baseline": rows[0]["run"], "reference": rows[-1]["run"], "summary": summary, "runs": runs,
           "statistics": {"n_boot": N_BOOT, "alpha": ALPHA, "correction": "holm", "family": "every difference "
                          "from the baseline in the summary, per TPR metric", "seeds": {
                              r["run"]: len(inputs[r["run"]]["scores"]) for r in rows}}}
    check(Comparison, out, str(out_json))
    write_json(out, out_json)
    pages.write_page(out_html, "comparison.html.j2", tpr_keys=TPR_KEYS, summary=[_summary_view(s) for s in summary],
                     runs=[_run_view(name, info) for name, info in runs.items()])
    plots.comparison_summary(summary, out_png)
    return out


def _summary(rows: list[dict], runs: dict, inputs: dict) -> list[dict]:
    """The summary rows (and each stored-dtype run again as float32 logits), with verdicts."""
    logits = {r["run"]: read_seed_logits(inputs[r["run"]]["scores"]) for r in rows}  # each file read once
    seed_scores = {}

    def seeds(run: str, dtype: str) -> SeedScores:
        if (run, dtype) not in seed_scores:  # the baseline's is shared by every row
            seed_scores[run, dtype] = SeedScores.from_runs(logits[run], dtype)
        return seed_scores[run, dtype]

    base_run = rows[0]["run"]
    base_dtype, base_m = _as_stored(runs[base_run]["test"])
    base = (base_m, seeds(base_run, base_dtype))
    summary = []
    for r in rows:
        info = runs[r["run"]]
        dtype, m = _as_stored(info["test"])
        label = {"baseline": f"{r['run']} (all fixes)", "reference": f"{r['run']} (every gen2 setting)"}.get(
            r["role"], f"{base_run} + {r['factor']}")
        ds = info["config"].get("dataset")
        summary.append(summary_row(label, r["run"], r["role"], r["factor"], dtype, m, info["epochs"],
                                   seeds(r["run"], dtype),
                                   None if r["role"] == "baseline" else base, ds))
        if dtype != "logit_float32":
            # the same weights and scores, ranked as float32 logits: the cast alone removed
            summary.append(summary_row(f"{r['run']} without the {dtype} cast (same weights, float32 logits)",
                                       r["run"], r["role"] + "_float32", "cast removed", "logit_float32",
                                       info["test"]["metrics"], info["epochs"],
                                       seeds(r["run"], "logit_float32"), base, ds))
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
