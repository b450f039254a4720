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

from lensfinder import STAMP_SIZE
from lensfinder.contracts import FPR_KEYS, TPR_KEYS
from lensfinder.metrics import evaluate_scores
from lensfinder.stamps import iter_row_groups

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
            keep = ("n_pos", "n_neg", "auc", "pauc", *TPR_KEYS, *(f"{k}_ci95" for k in TPR_KEYS),
                    FPR_KEYS[0], FPR_KEYS[-1], "min_resolvable_fpr")
            res[split] = {k: m[k] for k in keep}
        out["models"][mname] = res
    return out
