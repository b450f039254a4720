"""Phase 5 evaluation: score the test split once, with the best checkpoint.

Writes ``scores.parquet`` (sample_id, label, float32 logit), ``metrics.json`` (every
metric of :mod:`lensfinder.metrics` on float32 logits, each low-FPR number with its
95% interval and the smallest resolvable FPR, plus the same metrics as the run's own
score dtype would give), a ROC plot with a log FPR axis and per-class score histograms.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lensfinder.metrics import evaluate_scores, roc, saturation_logit, scores_as_stored  # noqa: E402
from lensfinder.tables import write_json, write_parquet, write_png  # noqa: E402
from lensfinder.training.checkpoint import data_fingerprint  # noqa: E402
from lensfinder.training.config import StaleInput  # noqa: E402
from lensfinder.training.inference import SelectedModel, scores_table  # noqa: E402


def plot_roc(labels, logits, score_dtype: str, path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    n_neg = int((labels == 0).sum())
    for dtype, style in zip(dict.fromkeys(["logit_float32", score_dtype]), ("-", "--")):
        fpr, tpr, _ = roc(labels, scores_as_stored(logits, dtype))
        ax.step(np.maximum(fpr, 0.5 / n_neg), tpr, style, where="post", label=dtype)
    ax.axvline(1.0 / n_neg, color="grey", lw=0.8, ls=":", label=f"1/n_neg = {1.0 / n_neg:.1e}")
    ax.set_xscale("log")
    ax.set_xlim(0.5 / n_neg, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    write_png(fig, path)


def plot_histograms(labels, logits, path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(float(logits.min()), float(logits.max()) + 1e-6, 60)
    ax.hist(logits[labels == 0], bins=bins, histtype="step", label=f"controls ({(labels == 0).sum()})", log=True)
    ax.hist(logits[labels == 1], bins=bins, histtype="step", label=f"lenses ({(labels == 1).sum()})", log=True)
    sat = saturation_logit("prob_bfloat16")
    ax.axvline(sat, color="grey", ls=":", lw=0.8, label=f"bf16 sigmoid saturates ({sat:.2f})")
    ax.set_xlabel("logit (float32)")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_png(fig, path)


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
    write_json(metrics, out / "metrics.json")
    title = f"{cfg.name}: test split, best epoch {sel.epoch}"
    plot_roc(labels, logits, cfg.train.eval_score_dtype, out / "roc.png", title)
    plot_histograms(labels, logits, out / "score_hist.png", title)
    return metrics
