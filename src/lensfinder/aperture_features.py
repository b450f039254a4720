"""What a stamp looks like without its pixel layout: fluxes and colours in annuli around the
centre. These are the features of the flux-only baseline (:mod:`lensfinder.flux_baseline`)
and the features phase 4d matches controls on (:mod:`lensfinder.matching`), so that the one
classifier the matching is built to defeat sees exactly what was matched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensfinder import STAMP_SIZE
from lensfinder.stamps import iter_row_groups

APERTURE_EDGES_PIX = (0.0, 3.0, 6.0, 10.0, 16.0, 32.0)  # annuli around the stamp centre
FEATURE_NAMES = tuple([f"asinh_flux_{b}_{i}" for b in "grz" for i in range(len(APERTURE_EDGES_PIX) - 1)]
                      + [f"{c}_{i}" for c in ("g_r", "r_z") for i in range(len(APERTURE_EDGES_PIX) - 1)])
FEATURES_DESCRIPTION = (f"asinh flux in annuli {APERTURE_EDGES_PIX} px per band + g-r, r-z colours per annulus")


def _annulus_masks() -> np.ndarray:
    c = (STAMP_SIZE - 1) / 2.0
    yy, xx = np.mgrid[:STAMP_SIZE, :STAMP_SIZE]
    r = np.hypot(xx - c, yy - c)
    e = APERTURE_EDGES_PIX
    return np.stack([(r >= e[i]) & (r < e[i + 1]) for i in range(len(e) - 1)]).astype(np.float32)


def flux_features(stamps: np.ndarray) -> np.ndarray:
    """(N, 3, 64, 64) nanomaggies -> (N, 25) features (:data:`FEATURE_NAMES`), no pixel
    layout: per band the flux in five annuli (asinh-scaled, softening 0.1 nanomaggies) and
    the g-r, r-z colours of each annulus. This is everything a "more flux / bluer light?"
    classifier can use."""
    masks = _annulus_masks()  # (5, 64, 64)
    flux = np.einsum("nbyx,ayx->nba", stamps.astype(np.float32), masks)  # (N, 3, 5)
    mag = np.arcsinh(flux / 0.1)
    colours = np.concatenate([mag[:, 0] - mag[:, 1], mag[:, 1] - mag[:, 2]], axis=1)
    feats = np.concatenate([mag.reshape(mag.shape[0], mag.shape[1] * mag.shape[2]), colours], axis=1)
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)


def stamp_features(stamp_paths, columns=("sample_id", "label", "split")) -> pd.DataFrame:
    """``columns`` and the :func:`flux_features` (columns ``feat_0``..) of every stamp of
    the files ``stamp_paths``, in file order, streamed one row group at a time (memory: the
    features, not the stamps)."""
    parts = []
    for path in stamp_paths:
        for table, stamps in iter_row_groups(path, columns=list(columns)):
            f = flux_features(stamps)
            d = table.to_pandas()
            parts.append(pd.concat([d.reset_index(drop=True), pd.DataFrame(f).add_prefix("feat_")], axis=1))
    if not parts:
        raise FileNotFoundError("no stamp files given")
    return pd.concat(parts, ignore_index=True)


def feature_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("feat_")]
