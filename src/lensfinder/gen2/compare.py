"""The gen2-vs-gen3 comparison: per-run epoch tables and a one-factor-at-a-time summary.

Reads each run's ``history.json`` (validation, per epoch) and ``metrics.json`` (test split,
the checkpoint the run kept). Every TPR carries its 95% Wilson interval; every difference
from the baseline carries Newcombe's hybrid-score interval, so a factor whose effect is
inside the noise of this sample size reads as such.
"""

from __future__ import annotations

import math

from lensfinder import pages, plots
from lensfinder.contracts import FPR_KEYS, TPR_KEYS, Comparison, History, Metrics, check, read
from lensfinder.gen2.ties import find_cliffs
from lensfinder.metrics import wilson_interval
from lensfinder.tables import write_json

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


def summary_row(label: str, run: str, role: str, factor, dtype: str, m: dict, table: list[dict],
                base: dict | None, dataset: str | None = None) -> dict:
    """One line of the summary table: test TPRs with CIs, differences from the baseline,
    and the validation cliffs of the run's history in that dtype."""
    prefix = "" if dtype == table[0]["score_dtype"] else "f32_"
    n_pos = m["n_pos"]
    row = {"label": label, "run": run, "role": role, "factor": factor, "score_dtype": dtype, "dataset": dataset,
           "n_pos": n_pos, "n_neg": m["n_neg"], "min_resolvable_fpr": m["min_resolvable_fpr"],
           "auc": m["auc"], "n_neg_tied_at_top": m["n_neg_tied_at_top"],
           "epochs_run": len(table), "duplication_factor": table[-1]["duplication_factor"],
           "val_cliff_epochs": {k: [table[i]["epoch"] for i in find_cliffs([r[prefix + k] for r in table],
                                                                          table[0]["n_pos"])]
                                for k in TPR_KEYS}}
    for k in TPR_KEYS:
        row[k] = m[k]
        row[f"{k}_ci95"] = list(wilson_interval(round(m[k] * n_pos), n_pos))
        if base is not None:
            d = newcombe_interval(round(m[k] * n_pos), n_pos, round(base[k] * base["n_pos"]), base["n_pos"])
            row[f"delta_{k}"] = m[k] - base[k]
            row[f"delta_{k}_ci95"] = list(d)
            row[f"delta_{k}_significant"] = bool(d[0] > 0 or d[1] < 0)
    return row


def compare_runs(rows: list[dict], inputs: dict, out_json, out_html, out_png, configs: dict | None = None) -> dict:
    """Rule body of ``compare``. ``rows``: :func:`lensfinder.gen2.ablations.comparison_rows`;
    ``inputs``: {run: {"history": path, "metrics": path}}; ``configs``: {run: run config}."""
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
    base_run = rows[0]["run"]
    base_dtype, base_m = _as_stored(runs[base_run]["test"])
    summary = []
    for r in rows:
        info = runs[r["run"]]
        dtype, m = _as_stored(info["test"])
        label = {"baseline": f"{r['run']} (all fixes)", "reference": f"{r['run']} (every gen2 setting)"}.get(
            r["role"], f"{base_run} + {r['factor']}")
        ds = info["config"].get("dataset")
        summary.append(summary_row(label, r["run"], r["role"], r["factor"], dtype, m, info["epochs"],
                                   None if r["role"] == "baseline" else base_m, ds))
        if dtype != "logit_float32":
            # the same weights and scores, ranked as float32 logits: the cast alone removed
            summary.append(summary_row(f"{r['run']} without the {dtype} cast (same weights, float32 logits)",
                                       r["run"], r["role"] + "_float32", "cast removed", "logit_float32",
                                       info["test"]["metrics"], info["epochs"], base_m, ds))
    out = {"baseline": base_run, "reference": rows[-1]["run"], "summary": summary, "runs": runs}
    check(Comparison, out, str(out_json))
    write_json(out, out_json)
    pages.write_page(out_html, "comparison.html.j2", tpr_keys=TPR_KEYS, summary=[_summary_view(s) for s in summary],
                     runs=[_run_view(name, info) for name, info in runs.items()])
    plots.comparison_summary(summary, out_png)
    return out


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
