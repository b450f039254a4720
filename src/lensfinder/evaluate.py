"""Phase 5 evaluation: score the test split once, with the best checkpoint.

The test set is the dataset's test split, plus -- where the dataset enables
``parent_negatives`` -- every unused parent galaxy of its test region as a negative
(:mod:`lensfinder.parent_negatives`), which is what resolves FPR 1e-4.

Writes ``scores.parquet`` (sample_id, label, float32 logit, from_parent), ``metrics.json`` (every
metric of :mod:`lensfinder.metrics` on float32 logits, each low-FPR number with its
95% interval and the smallest resolvable FPR, plus the same metrics as the run's own
score dtype would give, plus the negatives' scores by population), a ROC plot with a log
FPR axis, per-class score histograms and the highest-scored negatives of each population.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

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


def score_test_set(sel: SelectedModel, stamp_paths, negative_paths) -> pd.DataFrame:
    """sample_id, label, float32 logit and ``from_parent`` (a parent-sample negative, not a
    test-split stamp) of the test split of ``stamp_paths`` plus every row of
    ``negative_paths`` (lensfinder.parent_negatives), sorted by sample_id."""
    parts = []
    for paths, from_parent in ((stamp_paths, False), (negative_paths, True)):
        if paths:
            sid, labels, logits = sel.score(paths, "test")
            parts.append(pd.DataFrame({"sample_id": sid, "label": labels, "logit": logits, "from_parent": from_parent}))
    scores = pd.concat(parts, ignore_index=True).sort_values("sample_id", kind="stable").reset_index(drop=True)
    if scores["sample_id"].duplicated().any():
        dup = scores.loc[scores["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise ValueError(f"sample_id {dup} is both a test-split stamp and a parent negative ({negative_paths})")
    return scores


def negatives_summary(scores: pd.DataFrame) -> dict:
    """How many test negatives came from where; the smallest FPR they resolve."""
    neg = scores[scores["label"] == 0]
    n_parent = int(neg["from_parent"].sum())
    return {"n_negatives": int(len(neg)), "test_split": int(len(neg) - n_parent), "parent_test_region": n_parent,
            "min_resolvable_fpr": 1.0 / max(len(neg), 1)}


def evaluate_run(run_config_path, best_path, stamp_paths, out_dir, flux_baseline_path=None, negative_paths=()) -> dict:
    """Score the test split of ``stamp_paths`` (and the parent-sample negatives of
    ``negative_paths``) with ``best.pt``; write scores, metrics and plots (with the
    dataset's flux-only baseline beside them, given its JSON). Refuses stamps other than
    those the checkpoint was trained on."""
    sel = SelectedModel(run_config_path, best_path)
    cfg = sel.cfg
    stamp_paths = sorted(str(p) for p in stamp_paths)
    negative_paths = sorted(str(p) for p in negative_paths)
    if sel.data_fingerprint != data_fingerprint(stamp_paths):
        raise StaleInput(f"{best_path} was trained on other stamp files than {stamp_paths}: retrain the run "
                         f"(snakemake train_{cfg.name})")
    scores = score_test_set(sel, stamp_paths, negative_paths)
    sid, labels, logits = (scores[c].to_numpy() for c in ("sample_id", "label", "logit"))
    out = Path(out_dir)
    write_parquet(scores_table(sid, labels, logits).append_column("from_parent", pa.array(scores["from_parent"])),
                  out / "scores.parquet")
    metrics = {"run": cfg.name, "split": "test", **sel.provenance(), "negatives": negatives_summary(scores),
               "metrics": evaluate_scores(labels, logits, "logit_float32")}
    if negative_paths:
        own = scores[~scores["from_parent"]]
        metrics["metrics_test_split_only"] = evaluate_scores(own["label"], own["logit"], "logit_float32")
    if cfg.train.eval_score_dtype != "logit_float32":
        metrics[f"metrics_as_{cfg.train.eval_score_dtype}"] = evaluate_scores(labels, logits, cfg.train.eval_score_dtype)
    all_paths = stamp_paths + negative_paths
    # (one read per set: the two kinds of stamp file may type their strings differently)
    pops = pd.concat([read_columns(p, ["sample_id", "population"]).to_pandas() for p in (stamp_paths, negative_paths)
                      if p]).set_index("sample_id")["population"]
    scores["population"] = pops.reindex(sid).to_numpy()
    metrics["negatives_by_population"] = negatives_by_population(labels, logits, scores["population"])
    if flux_baseline_path is not None:
        metrics["flux_baseline_test"] = flux_baseline_beside(flux_baseline_path)
    check(Metrics, metrics, str(out / "metrics.json"))
    write_json(metrics, out / "metrics.json")
    title = f"{cfg.name}: test split{' + parent negatives' if negative_paths else ''}, best epoch {sel.epoch}"
    plots.roc_curve(labels, logits, cfg.train.eval_score_dtype, out / "roc.png", title)
    plots.score_histograms(labels, logits, out / "score_hist.png", title)
    top_negatives(scores, all_paths, out / "top_negatives.png",
                  f"{cfg.name}: highest-scored test negatives by population (logit)")
    return metrics
