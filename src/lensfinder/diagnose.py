"""Phase 5 diagnostics: the evidence behind "why did gen2 collapse?", computed per run.

Everything here reads workflow products only -- a run's ``history.json`` and every epoch's
validation logits (``val_scores.parquet``), its dataset's manifest, audit and stamps -- so
each number in the report traces to a file under ``results/``.

* :func:`tie_analysis` -- per epoch and per score dtype (the run's own, float32 logits,
  bf16 probabilities): negatives and positives tied at the top score, how many scores
  are saturated at exactly 1.0, and the metrics recomputed. A drop that exists in the
  stored dtype but not in float32 logits of the *same weights* is a precision artefact,
  not a change in ranking.
* :func:`flux_baseline` -- a classifier that never sees pixels: aperture fluxes and colours
  only. Its AUC / tpr@fpr say how much of a dataset is solvable by "is there extra flux?".
* :func:`memorisation` -- for paired data: validation controls whose twin positive was
  trained on vs the rest. A memorising model scores the former higher.
* :func:`read_gen2_history` / :func:`explain_gen2_history` -- the user's own gen2
  ``history.json``: validated (clear errors, no tracebacks) and checked for the saturation
  signature.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from lensfinder import STAMP_SIZE  # noqa: E402
from lensfinder.metrics import FPR_TARGETS, evaluate_scores, saturation_logit, scores_as_stored, wilson_interval  # noqa: E402
from lensfinder.stamps import iter_row_groups  # noqa: E402
from lensfinder.tables import write_json, write_png  # noqa: E402
from lensfinder.training.config import load_run_config, require_same_run  # noqa: E402

TARGET_KEYS = ("tpr@fpr1e-4", "tpr@fpr0.001")
METRIC_KEYS = TARGET_KEYS + ("fpr@tpr0.50", "fpr@tpr0.70", "fpr@tpr0.85", "auc", "tpr0")


# --------------------------------------------------------------------------- cliffs
def find_cliffs(values, n_pos: int | None = None) -> list[int]:
    """Indices i where a metric falls to exactly 0 from a value significantly above 0.

    "Significantly": the previous value's 95% Wilson lower bound exceeds the upper bound of
    0/n_pos (with ``n_pos`` unknown, the previous value must be >= 0.05). That separates a
    cliff from a metric that was already at its resolution floor."""
    v = [float(x) for x in values]
    floor = wilson_interval(0, n_pos)[1] if n_pos else 0.05
    out = []
    for i in range(1, len(v)):
        prev, cur = v[i - 1], v[i]
        if cur == 0.0 and prev > 0.0:
            lo = wilson_interval(round(prev * n_pos), n_pos)[0] if n_pos else prev
            if lo >= floor:
                out.append(i)
    return out


# --------------------------------------------------------------------------- ties
def tie_analysis(val_scores: pd.DataFrame, dtypes) -> list[dict]:
    """Per epoch and score dtype: ties at the top, saturation and metrics.

    ``val_scores``: columns epoch, label (0/1), logit (float32). ``dtypes``: score dtypes of
    :func:`lensfinder.metrics.scores_as_stored`. One dict per (epoch, dtype) with
    n_neg/n_pos_tied_at_top, n_neg/n_pos_saturated (stored score exactly 1.0),
    max_logit_neg, and :data:`METRIC_KEYS`."""
    rows = []
    for epoch, g in val_scores.groupby("epoch", sort=True):
        labels = g["label"].to_numpy().astype(np.int8)
        logits = g["logit"].to_numpy().astype(np.float32)
        for dtype in dict.fromkeys(dtypes):
            m = evaluate_scores(labels, logits, dtype)
            s = scores_as_stored(logits, dtype)
            sat = s == 1.0
            rows.append({"epoch": int(epoch), "score_dtype": dtype, "n_pos": m["n_pos"], "n_neg": m["n_neg"],
                         "n_neg_tied_at_top": m["n_neg_tied_at_top"], "n_pos_tied_at_top": m["n_pos_tied_at_top"],
                         "n_neg_saturated": int((sat & (labels == 0)).sum()),
                         "n_pos_saturated": int((sat & (labels == 1)).sum()),
                         "max_logit_neg": float(logits[labels == 0].max()),
                         **{k: m[k] for k in METRIC_KEYS}})
    return rows


def cliff_summary(ties: list[dict]) -> dict:
    """{dtype: {metric: [epochs where it fell off a cliff]}} from :func:`tie_analysis` rows."""
    df = pd.DataFrame(ties)
    out = {}
    for dtype, g in df.groupby("score_dtype", sort=False):
        g = g.sort_values("epoch")
        n_pos = int(g["n_pos"].iloc[0])
        out[dtype] = {k: [int(g["epoch"].iloc[i]) for i in find_cliffs(g[k], n_pos)] for k in TARGET_KEYS}
    return out


# --------------------------------------------------------------------------- flux-only baseline
APERTURE_EDGES_PIX = (0.0, 3.0, 6.0, 10.0, 16.0, 32.0)  # annuli around the stamp centre


def _annulus_masks() -> np.ndarray:
    c = (STAMP_SIZE - 1) / 2.0
    yy, xx = np.mgrid[:STAMP_SIZE, :STAMP_SIZE]
    r = np.hypot(xx - c, yy - c)
    e = APERTURE_EDGES_PIX
    return np.stack([(r >= e[i]) & (r < e[i + 1]) for i in range(len(e) - 1)]).astype(np.float32)


def flux_features(stamps: np.ndarray) -> np.ndarray:
    """(N, 3, 64, 64) nanomaggies -> (N, 25) features, no pixel layout: per band the flux
    in five annuli (asinh-scaled, softening 0.1 nanomaggies) and the g-r, r-z colours of
    each annulus. This is everything a "more flux / bluer light?" classifier can use."""
    masks = _annulus_masks()  # (5, 64, 64)
    flux = np.einsum("nbyx,ayx->nba", stamps.astype(np.float32), masks)  # (N, 3, 5)
    mag = np.arcsinh(flux / 0.1)
    colours = np.concatenate([mag[:, 0] - mag[:, 1], mag[:, 1] - mag[:, 2]], axis=1)
    feats = np.concatenate([mag.reshape(len(stamps), -1), colours], axis=1)
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)


def dataset_flux_features(stamp_paths) -> pd.DataFrame:
    """sample_id, label, split and :func:`flux_features` of every stamp of a dataset,
    streamed one row group at a time (memory: the features, not the stamps)."""
    parts = []
    for path in sorted(str(p) for p in stamp_paths):
        for table, stamps in iter_row_groups(path, columns=["sample_id", "label", "split"]):
            f = flux_features(stamps)
            d = table.to_pandas()
            parts.append(pd.concat([d.reset_index(drop=True), pd.DataFrame(f).add_prefix("feat_")], axis=1))
    if not parts:
        raise FileNotFoundError("flux baseline: no stamp files given")
    return pd.concat(parts, ignore_index=True)


def flux_baseline(stamp_paths, seed: int, name: str = "") -> dict:
    """Fit flux-only classifiers on the train split, score val and test.

    Returns {"dataset", "features", "models": {model: {split: metrics}}}: logistic
    regression (standardised features) and gradient-boosted trees, both scored as float32
    log-odds with :func:`lensfinder.metrics.evaluate_scores`."""
    df = dataset_flux_features(stamp_paths)
    cols = [c for c in df.columns if c.startswith("feat_")]
    train = df[df["split"] == "train"]
    models = {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=200, random_state=seed % (2**32)),
    }
    out = {"dataset": name, "n_features": len(cols),
           "features": f"asinh flux in annuli {APERTURE_EDGES_PIX} px per band + g-r, r-z colours per annulus",
           "n_train": int(len(train)), "n_rows": int(len(df)), "models": {}}
    for mname, model in models.items():
        model.fit(train[cols].to_numpy(), train["label"].to_numpy())
        res = {}
        for split in ("val", "test"):
            d = df[df["split"] == split]
            if d["label"].nunique() < 2:
                continue
            logit = model.decision_function(d[cols].to_numpy()).astype(np.float32)
            m = evaluate_scores(d["label"].to_numpy(), logit, "logit_float32")
            res[split] = {k: m[k] for k in ("n_pos", "n_neg", "auc", "pauc", "tpr@fpr1e-4", "tpr@fpr1e-4_ci95",
                                            "tpr@fpr0.001", "tpr@fpr0.001_ci95", "fpr@tpr0.50", "fpr@tpr0.85",
                                            "min_resolvable_fpr")}
        out["models"][mname] = res
    return out


# --------------------------------------------------------------------------- memorisation
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


# --------------------------------------------------------------------------- plots
def plot_ties(ties: list[dict], stored: str, path, title: str) -> None:
    df = pd.DataFrame(ties)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for dtype, style in zip(dict.fromkeys([stored, "logit_float32"]), ("o-", "s--")):
        g = df[df["score_dtype"] == dtype].sort_values("epoch")
        for key, colour in zip(TARGET_KEYS, ("C0", "C1")):
            a1.plot(g["epoch"], g[key], style, color=colour, label=f"{key} ({dtype})", ms=4)
        a2.plot(g["epoch"], g["n_neg_tied_at_top"], style, color="C3", label=f"negatives tied at top ({dtype})", ms=4)
    a1.set_ylabel("validation TPR")
    a1.legend(fontsize=7)
    a2.set_ylabel("count")
    a2.set_xlabel("epoch")
    a2.legend(fontsize=7)
    a1.set_title(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def plot_overfitting(history: list[dict], path, title: str) -> None:
    """Train loss, validation metrics and logit magnitude against epoch."""
    h = pd.DataFrame(history)
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(6, 7), sharex=True)
    a1.semilogy(h["epoch"], h["train_loss"], "o-", ms=4)
    a1.set_ylabel("train loss")
    a2.plot(h["epoch"], h["auc"], "o-", ms=4, label="AUC")
    for key in TARGET_KEYS:
        a2.plot(h["epoch"], h[key], "o-", ms=4, label=f"{key} ({h['score_dtype'].iloc[0]})")
        if "logit_float32" in h:
            a2.plot(h["epoch"], [d[key] if isinstance(d, dict) else np.nan for d in h["logit_float32"]], "s--", ms=3,
                    label=f"{key} (float32 logits)")
    a2.set_ylabel("validation")
    a2.legend(fontsize=7)
    for key, lab in (("mean_abs_logit_pos", "mean |logit|, lenses"), ("mean_abs_logit_neg", "mean |logit|, controls"),
                     ("max_logit_neg", "max logit, controls")):
        if key in h:
            a3.plot(h["epoch"], h[key], "o-", ms=4, label=lab)
    a3.axhline(saturation_logit("prob_bfloat16"), color="grey", ls=":",
               label=f"bf16 sigmoid == 1.0 above {saturation_logit('prob_bfloat16'):.2f}")
    a3.set_ylabel("logit")
    a3.set_xlabel("epoch")
    a3.legend(fontsize=7)
    a1.set_title(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


# --------------------------------------------------------------------------- per run
def diagnose_run(run_config_path, history_path, val_scores_path, manifest_path, audit_path, flux_baseline_path,
                 out_json, ties_png, overfit_png) -> dict:
    """Rule body of ``diagnose``: every diagnostic of one run in one JSON plus two plots.
    Refuses a history written by another configuration than ``run_config_path``."""
    cfg, _ = load_run_config(run_config_path)
    hist = json.loads(Path(history_path).read_text())
    require_same_run(history_path, hist.get("fingerprint"), cfg, run_config_path)
    epochs = hist["epochs"]
    if not epochs:
        raise ValueError(f"{history_path}: no epochs recorded")
    stored = epochs[0]["score_dtype"]
    vs = pq.read_table(val_scores_path).to_pandas()
    manifest = pq.read_table(manifest_path, columns=["sample_id", "twin_sample_id", "split"]).to_pandas()
    audit = json.loads(Path(audit_path).read_text())
    ties = tie_analysis(vs, [stored, "logit_float32", "prob_bfloat16"])
    last = epochs[-1]
    best_f32 = max(epochs, key=lambda e: (e.get("logit_float32", e)["tpr@fpr0.001"], e.get("logit_float32", e)["auc"]))
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
            "best_epoch_float32_tpr@fpr0.001": best_f32["epoch"],
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
    write_json(out, out_json)
    plot_ties(ties, stored, ties_png, f"{hist['run']}: validation ties, stored ({stored}) vs float32 logits")
    plot_overfitting(epochs, overfit_png, f"{hist['run']}: loss, validation metrics and logit scale")
    return out


# --------------------------------------------------------------------------- the user's gen2 history
class HistoryError(ValueError):
    """A gen2 history.json that cannot be read; the message names the file, epoch and key."""


REQUIRED_KEYS = ("tpr@fpr1e-4", "tpr@fpr0.001")
OPTIONAL_KEYS = ("fpr@tpr0.50", "fpr@tpr0.70", "fpr@tpr0.85", "train_loss")
KEY_ALIASES = {"tpr@fpr0.0001": "tpr@fpr1e-4", "tpr@fpr1e-3": "tpr@fpr0.001", "fpr@tpr0.5": "fpr@tpr0.50",
               "fpr@tpr0.7": "fpr@tpr0.70", "loss": "train_loss"}


def read_gen2_history(path) -> pd.DataFrame:
    """The user's gen2 history.json as one row per epoch (fractions, not percent).

    Accepts a list of per-epoch dicts, ``{"epochs" | "history": [...]}``, or columns
    ``{key: [value per epoch]}``; metric values may sit under a ``"val"`` sub-dict.
    Raises :class:`HistoryError` naming the file, epoch and key for missing keys, NaN,
    non-numeric or out-of-range values."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise HistoryError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(raw, dict):
        for k in ("epochs", "history"):
            if isinstance(raw.get(k), list):
                raw = raw[k]
                break
    if isinstance(raw, dict) and raw and all(isinstance(v, list) for v in raw.values()):
        n = {len(v) for v in raw.values()}
        if len(n) != 1:
            raise HistoryError(f"{path}: columns have different lengths {sorted(n)}")
        raw = [{k: raw[k][i] for k in raw} for i in range(n.pop())]
    if not isinstance(raw, list) or not raw:
        raise HistoryError(f"{path}: expected a list of per-epoch records (or {{'epochs': [...]}}), got {type(raw).__name__}")
    rows = []
    for i, rec in enumerate(raw):
        if not isinstance(rec, dict):
            raise HistoryError(f"{path}: record {i} is a {type(rec).__name__}, not an object")
        flat = {**rec, **(rec.get("val") if isinstance(rec.get("val"), dict) else {})}
        flat = {KEY_ALIASES.get(k, k): v for k, v in flat.items()}
        epoch = flat.get("epoch", i)
        row = {"epoch": epoch}
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key not in flat or flat[key] is None:
                if key in REQUIRED_KEYS:
                    raise HistoryError(f"{path}: epoch {epoch}: missing key {key!r} "
                                       f"(has: {', '.join(sorted(map(str, flat)))})")
                row[key] = np.nan
                continue
            v = flat[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise HistoryError(f"{path}: epoch {epoch}: {key!r} = {v!r} is not a number")
            if not math.isfinite(v):
                raise HistoryError(f"{path}: epoch {epoch}: {key!r} is {v} -- a NaN/inf metric means that "
                                   "epoch's evaluation or loss failed; fix or drop the record")
            if key != "train_loss" and not 0.0 <= v <= 1.0:
                raise HistoryError(f"{path}: epoch {epoch}: {key!r} = {v} is outside [0, 1] "
                                   "(rates must be fractions, not percent)")
            row[key] = float(v)
        rows.append(row)
    return pd.DataFrame(rows)


def explain_gen2_history(df: pd.DataFrame, n_neg: int, n_pos: int | None = None) -> dict:
    """Check a gen2 history for the saturation signature and explain each cliff.

    With ``n_neg`` validation negatives, tpr@fpr=f is 0 as soon as more than f x n_neg
    negatives share the top score with the positives (every threshold that admits any of
    that block admits all of it). The FPR at which tpr@0.50/0.70/0.85 are *equal* is the
    size of that block: k = fpr x n_neg negatives tied at the top. Per epoch this returns
    the implied k, the tpr@fpr values that k predicts (0 when k exceeds the budget) and
    whether they match what was logged."""
    budget = {key: math.floor(f * n_neg) for key, f in zip(TARGET_KEYS, FPR_TARGETS)}
    cliffs = {key: [int(df["epoch"].iloc[i]) for i in find_cliffs(df[key], n_pos)] for key in TARGET_KEYS}
    epochs = []
    for _, r in df.iterrows():
        fprs = [r[k] for k in ("fpr@tpr0.50", "fpr@tpr0.70", "fpr@tpr0.85") if not np.isnan(r[k])]
        e = {"epoch": int(r["epoch"]), **{k: (None if isinstance(r[k], float) and np.isnan(r[k]) else r[k])
                                         for k in REQUIRED_KEYS + OPTIONAL_KEYS}}
        top_fpr = r["fpr@tpr0.50"] if not np.isnan(r["fpr@tpr0.50"]) else None
        if top_fpr is not None and top_fpr > 0:
            # fpr@tpr0.50 > 0: the block admitted to reach half the positives already holds
            # negatives; if it is the top block, every tpr@fpr below its FPR is 0.
            k = round(top_fpr * n_neg)
            e["implied_neg_tied_at_top"] = k
            e["predicted"] = {key: (0.0 if k > budget[key] else None) for key in TARGET_KEYS}
            e["consistent"] = all(e[key] == 0.0 for key in TARGET_KEYS if k > budget[key])
        e["saturation_signature"] = bool(len(fprs) >= 2 and min(fprs) > 0 and max(fprs) - min(fprs) < 0.5 / n_neg)
        epochs.append(e)
    sig = [e["epoch"] for e in epochs if e["saturation_signature"]]
    lines = []
    for key in TARGET_KEYS:
        f = dict(zip(TARGET_KEYS, FPR_TARGETS))[key]
        for ep in cliffs[key]:
            e = next(x for x in epochs if x["epoch"] == ep)
            prev = epochs[[x["epoch"] for x in epochs].index(ep) - 1]
            if "implied_neg_tied_at_top" in e:
                lines.append(
                    f"{key} fell from {prev[key]:.1%} (epoch {prev['epoch']}) to 0 at epoch {ep}. That epoch "
                    f"fpr@tpr0.50 = {e['fpr@tpr0.50']:.2%}: the operating point that first reaches half of the "
                    f"positives already admits ~{e['implied_neg_tied_at_top']} of {n_neg} negatives. If those "
                    f"share the top score with the positives (tied block), no threshold admits fewer, and the "
                    f"budget at fpr={f:g} is {budget[key]} negatives: tpr@fpr={f:g} must read 0 -- as logged.")
            else:
                lines.append(f"{key} fell from {prev[key]:.1%} (epoch {prev['epoch']}) to 0 at epoch {ep}; "
                             f"fpr@tpr0.50 is not logged for that epoch, so the tied block cannot be sized.")
    for ep in sig:
        e = next(x for x in epochs if x["epoch"] == ep)
        lines.append(
            f"epoch {ep}: fpr@tpr0.50/0.70/0.85 are equal ({e['fpr@tpr0.85']:.2%}) -- one operating point holds "
            f">= 85% of the positives and ~{round(e['fpr@tpr0.85'] * n_neg)} negatives: a block of identical top "
            f"scores, the signature of saturated scores (bf16 sigmoid is exactly 1.0 for logit >= "
            f"{saturation_logit('prob_bfloat16'):.2f}), not of a gradual loss of ranking.")
    return {"n_neg": n_neg, "n_pos": n_pos, "budget_negatives": budget, "cliffs": cliffs,
            "saturation_signature_epochs": sig, "epochs": epochs, "explanation": lines,
            "verdict": ("saturation: the collapse is a tie artefact of the stored scores"
                        if (sig or any("implied_neg_tied_at_top" in x for x in epochs)) and any(cliffs.values())
                        else "no saturation signature found in these metrics")}


def main(argv=None) -> int:
    """``python -m lensfinder.diagnose HISTORY.json --n-neg N [--n-pos P] [--out OUT.json]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m lensfinder.diagnose",
                                description="check a gen2 history.json for the bf16 saturation signature")
    p.add_argument("history")
    p.add_argument("--n-neg", type=int, required=True, help="validation negatives (gen2: 65090)")
    p.add_argument("--n-pos", type=int, default=None, help="validation positives (gen2: 62910)")
    p.add_argument("--out", default=None, help="write the analysis as JSON here")
    a = p.parse_args(argv)
    try:
        res = explain_gen2_history(read_gen2_history(a.history), a.n_neg, a.n_pos)
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.out:
        write_json(res, a.out)
    print(res["verdict"])
    for line in res["explanation"]:
        print(" -", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
