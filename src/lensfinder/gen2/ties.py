"""Ties and cliffs: where a low-FPR metric of the gen2 study falls to zero, and whether the
stored score dtype (gen2: bf16 sigmoid probabilities) rather than the ranking did it.

A drop that exists in the stored dtype but not in float32 logits of the *same weights* is
a precision artefact, not a change in ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensfinder.contracts import FPR_KEYS, TPR_KEYS
from lensfinder.metrics import evaluate_scores, scores_as_stored, wilson_interval

METRIC_KEYS = TPR_KEYS + FPR_KEYS + ("auc", "tpr0")


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
        out[dtype] = {k: [int(g["epoch"].iloc[i]) for i in find_cliffs(g[k], n_pos)] for k in TPR_KEYS}
    return out
