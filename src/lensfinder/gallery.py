"""Colour images of stamps for people to look at: asinh-stretched g,r,z composites (the
Lupton et al. 2004 scheme, via astropy's ``make_lupton_rgb``) laid out in a grid, each
positive next to a control -- its own twin for paired data, otherwise the control
closest in r-band magnitude."""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.visualization import make_lupton_rgb

from lensfinder import plots
from lensfinder.stamps import iter_row_groups, open_stamps

# Relative band scales of the Legacy Surveys viewer (g 6.0 : r 3.4 : z 2.2), so the
# z-band noise does not tint the sky red; stretch and Q in nanomaggies per pixel.
BAND_SCALE = (6.0 / 2.2, 3.4 / 2.2, 1.0)  # g, r, z -> blue, green, red channels
STRETCH, Q = 0.08, 8


def rgb(stamp: np.ndarray) -> np.ndarray:
    """(3, H, W) g,r,z nanomaggies -> (H, W, 3) uint8 asinh colour image (z red, g blue)."""
    g, r, z = (np.nan_to_num(stamp[i]) * BAND_SCALE[i] for i in range(3))
    return make_lupton_rgb(z, r, g, stretch=STRETCH, Q=Q)


def pick_pairs(meta: pd.DataFrame, n_pairs: int) -> list[tuple[int, int]]:
    """(positive row, control row) index pairs into ``meta`` (needs label, sample_id,
    twin_sample_id, mag_r, arc_snr): the brightest-arc positives that have a partner."""
    pos = meta[meta["label"] == 1].sort_values("arc_snr", ascending=False)
    ctl = meta[meta["label"] == 0]
    by_id = pd.Series(ctl.index, index=ctl["sample_id"])
    pairs = []
    for i, row in pos.iterrows():  # a gallery shows a handful of pairs: no hot path
        if row["twin_sample_id"] >= 0:
            j = by_id.get(row["twin_sample_id"])
        else:
            j = (ctl["mag_r"] - row["mag_r"]).abs().idxmin() if len(ctl) else None
        if j is not None and not pd.isna(j):
            pairs.append((i, int(j)))
        if len(pairs) == n_pairs:
            break
    return pairs


def write_gallery(stamp_paths, out_png, n_pairs: int = 12, title: str = "") -> int:
    """PNG of up to ``n_pairs`` positive/control pairs from the first row groups of the
    stamp files. Returns the number of pairs drawn."""
    metas, stamps = [], []
    cols = ["label", "sample_id", "twin_sample_id", "mag_r", "arc_snr", "theta_e", "magnification", "split"]
    for path in stamp_paths:
        for meta, st in iter_row_groups(path, columns=cols, row_groups=[0] if _n_groups(path) else []):
            metas.append(meta.to_pandas())
            stamps.append(st)
    if not metas:
        meta, st = pd.DataFrame(columns=cols), np.zeros((0, 3, 64, 64), np.float32)
    else:
        meta, st = pd.concat(metas, ignore_index=True), np.concatenate(stamps)
    pairs = pick_pairs(meta, n_pairs)
    images = [(rgb(st[i]), f"lens  θE={meta.theta_e[i]:.1f}\"  μ={meta.magnification[i]:.1f}\n"
                           f"S/N={meta.arc_snr[i]:.0f}  {meta.split[i]}",
               rgb(st[j]), f"control  r={meta.mag_r[j]:.1f}\n{meta.split[j]}") for i, j in pairs]
    plots.pair_gallery(images, out_png, title or "positives (left) and controls (right), asinh g,r,z")
    return len(pairs)


def _n_groups(path) -> int:
    return open_stamps(path).num_row_groups
