"""Phase 5 evaluation: score the test split once, with the best checkpoint.

Writes ``scores.parquet`` (sample_id, label, float32 logit), ``metrics.json`` (every
metric of :mod:`lensfinder.metrics` on float32 logits, each low-FPR number with its
95% interval and the smallest resolvable FPR, plus the same metrics as the run's own
score dtype would give, plus the negatives' scores by population), a ROC plot with a log
FPR axis, per-class score histograms and the highest-scored negatives of each population.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lensfinder import plots
from lensfinder.contracts import Metrics, check
from lensfinder.gallery import population_grid
from lensfinder.metrics import evaluate_scores, negatives_by_population
from lensfinder.stamps import read_columns
from lensfinder.tables import write_json, write_parquet
from lensfinder.training.checkpoint import data_fingerprint
from lensfinder.training.config import StaleInput
from lensfinder.training.inference import SelectedModel, scores_table


TOP_PER_POPULATION = 6


def top_negatives(scores: pd.DataFrame, stamp_paths, out_png, title: str, n: int = TOP_PER_POPULATION) -> None:
    """PNG: the ``n`` highest-scored negatives of each population (``scores``: sample_id,
    label, logit, population), one row per population."""
    neg = scores[scores["label"] == 0].sort_values(["logit", "sample_id"], ascending=[False, True], kind="stable")
    population_grid(neg.groupby("population", sort=True).head(n), stamp_paths, out_png, title, n,
                    lambda r: f"{r.population}\nlogit {r.logit:.2f}")


def flux_baseline_beside(flux_baseline_path) -> dict:
    """The dataset's flux-only baseline on the same test split (AUC and n per model), to
    stand beside the CNN's numbers: a CNN no better than it has learnt the flux shortcut."""
    fb = json.loads(Path(flux_baseline_path).read_text())
    return {"source": str(flux_baseline_path),
            **{m: {k: r["test"][k] for k in ("auc", "n_pos", "n_neg")} for m, r in fb["models"].items() if "test" in r}}


def evaluate_run(run_config_path, best_path, stamp_paths, out_dir, flux_baseline_path=None) -> dict:
    """Score the test split of ``stamp_paths`` with ``best.pt``; write scores, metrics and
    plots (with the dataset's flux-only baseline beside them, given its JSON). Refuses
    stamps other than those the checkpoint was trained on."""
    sel = SelectedModel(run_config_path, best_path)
    cfg = sel.cfg
    stamp_paths = sorted(str(p) for p in stamp_paths)
    if sel.data_fingerprint != data_fingerprint(stamp_paths):
        raise StaleInput(f"{best_path} was trained on other stamp files than {stamp_paths}: retrain the run "
                         f"(snakemake train_{cfg.name})")
    sid, labels, logits = sel.score(stamp_paths, "test")
    out = Path(out_dir)
    write_parquet(scores_table(sid, labels, logits), out / "scores.parquet")
    metrics = {"run": cfg.name, "split": "test", **sel.provenance(),
               "metrics": evaluate_scores(labels, logits, "logit_float32")}
    if cfg.train.eval_score_dtype != "logit_float32":
        metrics[f"metrics_as_{cfg.train.eval_score_dtype}"] = evaluate_scores(labels, logits, cfg.train.eval_score_dtype)
    pops = read_columns(stamp_paths, ["sample_id", "population"]).to_pandas().set_index("sample_id")["population"]
    scores = pd.DataFrame({"sample_id": sid, "label": labels, "logit": logits,
                           "population": pops.reindex(sid).to_numpy()})
    metrics["negatives_by_population"] = negatives_by_population(labels, logits, scores["population"])
    if flux_baseline_path is not None:
        metrics["flux_baseline_test"] = flux_baseline_beside(flux_baseline_path)
    check(Metrics, metrics, str(out / "metrics.json"))
    write_json(metrics, out / "metrics.json")
    title = f"{cfg.name}: test split, best epoch {sel.epoch}"
    plots.roc_curve(labels, logits, cfg.train.eval_score_dtype, out / "roc.png", title)
    plots.score_histograms(labels, logits, out / "score_hist.png", title)
    top_negatives(scores, stamp_paths, out / "top_negatives.png",
                  f"{cfg.name}: highest-scored test negatives by population (logit)")
    return metrics
