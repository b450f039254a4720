"""The user's own gen2 ``history.json``: validated (clear errors naming file, epoch and key;
no tracebacks) and checked for the saturation signature of bf16 sigmoid scores.

``python -m lensfinder.gen2.user_history HISTORY.json --n-neg N [--n-pos P] [--out OUT.json]``
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lensfinder.contracts import FPR_KEYS, FPR_TARGETS, TPR_KEYS, fpr_key, metric_key
from lensfinder.gen2.ties import find_cliffs
from lensfinder.metrics import saturation_logit
from lensfinder.tables import write_json


class HistoryError(ValueError):
    """A gen2 history.json that cannot be read; the message names the file, epoch and key."""


REQUIRED_KEYS = TPR_KEYS
OPTIONAL_KEYS = (*FPR_KEYS, "train_loss")
# other spellings of the same metrics seen in gen2-era scripts -> the names of lensfinder.contracts
KEY_ALIASES = {"tpr@fpr0.0001": metric_key(1e-4), "tpr@fpr1e-3": metric_key(1e-3), "fpr@tpr0.5": fpr_key(0.5),
               "fpr@tpr0.7": fpr_key(0.7), "loss": "train_loss"}


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
    budget = {key: math.floor(f * n_neg) for key, f in zip(TPR_KEYS, FPR_TARGETS)}
    cliffs = {key: [int(df["epoch"].iloc[i]) for i in find_cliffs(df[key], n_pos)] for key in TPR_KEYS}
    epochs = []
    for _, r in df.iterrows():
        fprs = [r[k] for k in FPR_KEYS if not np.isnan(r[k])]
        e = {"epoch": int(r["epoch"]), **{k: (None if isinstance(r[k], float) and np.isnan(r[k]) else r[k])
                                         for k in REQUIRED_KEYS + OPTIONAL_KEYS}}
        top_fpr = r[FPR_KEYS[0]] if not np.isnan(r[FPR_KEYS[0]]) else None
        if top_fpr is not None and top_fpr > 0:
            # fpr@tpr0.50 > 0: the block admitted to reach half the positives already holds
            # negatives; if it is the top block, every tpr@fpr below its FPR is 0.
            k = round(top_fpr * n_neg)
            e["implied_neg_tied_at_top"] = k
            e["predicted"] = {key: (0.0 if k > budget[key] else None) for key in TPR_KEYS}
            e["consistent"] = all(e[key] == 0.0 for key in TPR_KEYS if k > budget[key])
        e["saturation_signature"] = bool(len(fprs) >= 2 and min(fprs) > 0 and max(fprs) - min(fprs) < 0.5 / n_neg)
        epochs.append(e)
    sig = [e["epoch"] for e in epochs if e["saturation_signature"]]
    lines = []
    for key in TPR_KEYS:
        f = dict(zip(TPR_KEYS, FPR_TARGETS))[key]
        for ep in cliffs[key]:
            e = next(x for x in epochs if x["epoch"] == ep)
            prev = epochs[[x["epoch"] for x in epochs].index(ep) - 1]
            if "implied_neg_tied_at_top" in e:
                lines.append(
                    f"{key} fell from {prev[key]:.1%} (epoch {prev['epoch']}) to 0 at epoch {ep}. That epoch "
                    f"fpr@tpr0.50 = {e[FPR_KEYS[0]]:.2%}: the operating point that first reaches half of the "
                    f"positives already admits ~{e['implied_neg_tied_at_top']} of {n_neg} negatives. If those "
                    f"share the top score with the positives (tied block), no threshold admits fewer, and the "
                    f"budget at fpr={f:g} is {budget[key]} negatives: tpr@fpr={f:g} must read 0 -- as logged.")
            else:
                lines.append(f"{key} fell from {prev[key]:.1%} (epoch {prev['epoch']}) to 0 at epoch {ep}; "
                             f"fpr@tpr0.50 is not logged for that epoch, so the tied block cannot be sized.")
    for ep in sig:
        e = next(x for x in epochs if x["epoch"] == ep)
        lines.append(
            f"epoch {ep}: fpr@tpr0.50/0.70/0.85 are equal ({e[FPR_KEYS[-1]]:.2%}) -- one operating point holds "
            f">= 85% of the positives and ~{round(e[FPR_KEYS[-1]] * n_neg)} negatives: a block of identical top "
            f"scores, the signature of saturated scores (bf16 sigmoid is exactly 1.0 for logit >= "
            f"{saturation_logit('prob_bfloat16'):.2f}), not of a gradual loss of ranking.")
    return {"n_neg": n_neg, "n_pos": n_pos, "budget_negatives": budget, "cliffs": cliffs,
            "saturation_signature_epochs": sig, "epochs": epochs, "explanation": lines,
            "verdict": ("saturation: the collapse is a tie artefact of the stored scores"
                        if (sig or any("implied_neg_tied_at_top" in x for x in epochs)) and any(cliffs.values())
                        else "no saturation signature found in these metrics")}


def main(argv=None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m lensfinder.gen2.user_history",
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
