"""Per-run diagnostics of the gen2 study: ties and saturation per epoch (stored dtype vs
float32 logits), memorisation of paired twins, leakage, duplication factor and the
overfitting view -- everything behind "why did gen2 collapse?", from workflow products
only (a run's history, every epoch's validation logits, its dataset's manifest, audit and
flux baseline), so each number traces to a file under ``results/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import mannwhitneyu

from lensfinder import plots
from lensfinder.contracts import Diagnostics, History, check, metric_key, read
from lensfinder.gen2.ties import cliff_summary, tie_analysis
from lensfinder.metrics import saturation_logit
from lensfinder.tables import write_json
from lensfinder.training.config import load_run_config, require_same_run


def memorisation(val_scores: pd.DataFrame, manifest: pd.DataFrame) -> dict:
    """Scores of validation controls whose paired twin positive is in the *train* split vs
    controls whose twin is not (or who have none), per epoch.

    ``auc_twin_trained_vs_other`` is P(twin-trained control outscores another control):
    0.5 = no memorisation signature; > 0.5 = the model recognises galaxies it was trained
    on as lenses. Returns {"applicable": False, "reason": ...} without paired twins."""
    twins = manifest.loc[manifest["twin_sample_id"] >= 0, ["sample_id", "twin_sample_id"]]
    if twins.empty:
        return {"applicable": False, "reason": "no paired twins in this dataset (controls are other galaxies)"}
    split_of = manifest.set_index("sample_id")["split"]
    twin_of = twins.set_index("sample_id")["twin_sample_id"]
    rows = []
    for epoch, g in val_scores[val_scores["label"] == 0].groupby("epoch", sort=True):
        tw = twin_of.reindex(g["sample_id"]).to_numpy()
        trained = np.zeros(len(g), bool)
        has = ~np.isnan(tw.astype(float))
        trained[has] = split_of.reindex(tw[has].astype(np.int64)).to_numpy() == "train"
        a, b = g["logit"].to_numpy()[trained], g["logit"].to_numpy()[~trained]
        row = {"epoch": int(epoch), "n_twin_trained": int(len(a)), "n_other": int(len(b)),
               "mean_logit_twin_trained": float(a.mean()) if len(a) else None,
               "mean_logit_other": float(b.mean()) if len(b) else None}
        if len(a) and len(b):
            u = mannwhitneyu(a, b, alternative="greater")
            row["auc_twin_trained_vs_other"] = float(u.statistic / (len(a) * len(b)))
            row["p_value"] = float(u.pvalue)
        rows.append(row)
    return {"applicable": True, "epochs": rows}


def diagnose_run(run_config_path, history_path, val_scores_path, manifest_path, audit_path, flux_baseline_path,
                 out_json, ties_png, overfit_png) -> dict:
    """Rule body of ``diagnose``: every diagnostic of one run in one JSON plus two plots.
    Refuses a history written by another configuration than ``run_config_path``."""
    cfg, _ = load_run_config(run_config_path)
    hist = read(History, history_path)
    require_same_run(history_path, hist.get("fingerprint"), cfg, run_config_path)
    epochs = hist["epochs"]
    if not epochs:
        raise ValueError(f"{history_path}: no epochs recorded")
    stored = epochs[0]["score_dtype"]
    vs = pq.read_table(val_scores_path).to_pandas()
    manifest = pq.read_table(manifest_path, columns=["sample_id", "twin_sample_id", "split"]).to_pandas()
    audit = json.loads(Path(audit_path).read_text())
    key = metric_key(1e-3)
    ties = tie_analysis(vs, [stored, "logit_float32", "prob_bfloat16"])
    last = epochs[-1]
    best_f32 = max(epochs, key=lambda e: (e.get("logit_float32", e)[key], e.get("logit_float32", e)["auc"]))
    out = {
        "run": hist["run"], "fingerprint": hist["fingerprint"], "score_dtype": stored,
        "saturation_logit": {d: saturation_logit(d) for d in ("prob_bfloat16", "prob_float16", "prob_float32")},
        "ties": ties, "cliffs": cliff_summary(ties),
        "memorisation": memorisation(vs, manifest),
        "leakage": audit.get("leakage", audit),
        "duplication_factor": {"per_epoch": [e["duplication_factor"] for e in epochs],
                               "samples_seen": last["samples_seen"], "n_train": last["n_train"]},
        "overfitting": {
            "epochs_run": len(epochs), "best_epoch_reported": hist.get("best_epoch"),
            "stopped_early": hist.get("stopped_early"),
            f"best_epoch_float32_{key}": best_f32["epoch"],
            "train_loss_first": epochs[0]["train_loss"], "train_loss_last": last["train_loss"],
            "val_auc_at_best": best_f32["auc"] if stored == "logit_float32" else best_f32["logit_float32"]["auc"],
            "val_auc_last": last["auc"] if stored == "logit_float32" else last["logit_float32"]["auc"],
            "mean_abs_logit_pos": [e["mean_abs_logit_pos"] for e in epochs],
            "mean_abs_logit_neg": [e["mean_abs_logit_neg"] for e in epochs],
            "max_logit_neg": [e["max_logit_neg"] for e in epochs],
        },
        "flux_baseline": json.loads(Path(flux_baseline_path).read_text()),
        "sources": {"history": str(history_path), "val_scores": str(val_scores_path), "manifest": str(manifest_path),
                    "audit": str(audit_path), "flux_baseline": str(flux_baseline_path)},
    }
    check(Diagnostics, out, str(out_json))
    write_json(out, out_json)
    plots.ties(ties, stored, ties_png, f"{hist['run']}: validation ties, stored ({stored}) vs float32 logits")
    plots.overfitting(epochs, overfit_png, f"{hist['run']}: loss, validation metrics and logit scale")
    return out
