"""Phase 5 evaluation: score the test split once, with the best checkpoint.

Writes ``scores.parquet`` (sample_id, label, float32 logit), ``metrics.json`` (every
metric of :mod:`lensfinder.metrics` on float32 logits, each low-FPR number with its
95% interval and the smallest resolvable FPR, plus the same metrics as the run's own
score dtype would give), a ROC plot with a log FPR axis and per-class score histograms.
"""

from __future__ import annotations

from pathlib import Path


from lensfinder import plots
from lensfinder.contracts import Metrics, check
from lensfinder.metrics import evaluate_scores
from lensfinder.tables import write_json, write_parquet
from lensfinder.training.checkpoint import data_fingerprint
from lensfinder.training.config import StaleInput
from lensfinder.training.inference import SelectedModel, scores_table


def evaluate_run(run_config_path, best_path, stamp_paths, out_dir) -> dict:
    """Score the test split of ``stamp_paths`` with ``best.pt``; write scores, metrics and
    plots. Refuses stamps other than those the checkpoint was trained on."""
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
    check(Metrics, metrics, str(out / "metrics.json"))
    write_json(metrics, out / "metrics.json")
    title = f"{cfg.name}: test split, best epoch {sel.epoch}"
    plots.roc_curve(labels, logits, cfg.train.eval_score_dtype, out / "roc.png", title)
    plots.score_histograms(labels, logits, out / "score_hist.png", title)
    return metrics
