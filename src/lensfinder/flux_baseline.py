"""The flux-only baseline: a classifier that never sees pixels -- aperture fluxes and
colours in annuli only. Its AUC / tpr@fpr say how much of a dataset is solvable by "is
there extra (blue) flux near the centre?", the shortcut a CNN must not be allowed to learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lensfinder.aperture_features import FEATURES_DESCRIPTION, feature_columns, stamp_features
from lensfinder.contracts import FPR_KEYS, TPR_KEYS
from lensfinder.metrics import evaluate_scores

def dataset_flux_features(stamp_paths) -> pd.DataFrame:
    """sample_id, label, split, population and the aperture features of every stamp of a
    dataset (:func:`lensfinder.aperture_features.stamp_features`)."""
    return stamp_features(sorted(str(p) for p in stamp_paths), ("sample_id", "label", "split", "population"))


def flux_baseline(stamp_paths, seed: int, name: str = "") -> dict:
    """Fit flux-only classifiers on the train split, score val and test.

    Returns {"dataset", "features", "models": {model: {split: metrics}}}: logistic
    regression (standardised features) and gradient-boosted trees, both scored as float32
    log-odds with :func:`lensfinder.metrics.evaluate_scores`."""
    df = dataset_flux_features(stamp_paths)
    cols = feature_columns(df)
    train = df[df["split"] == "train"]
    models = {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=200, random_state=seed % (2**32)),
    }
    out = {"dataset": name, "n_features": len(cols),
           "features": FEATURES_DESCRIPTION,
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
            keep = ("n_pos", "n_neg", "auc", "pauc", *TPR_KEYS, *(f"{k}_ci95" for k in TPR_KEYS),
                    FPR_KEYS[0], FPR_KEYS[-1], "min_resolvable_fpr")
            res[split] = {k: m[k] for k in keep}
        out["models"][mname] = res
    return out
