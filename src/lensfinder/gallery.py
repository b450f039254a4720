"""Figures of a dataset's stamps for people to look at.

The gallery: asinh-stretched g,r,z composites (the Lupton et al. 2004 scheme, via
astropy's ``make_lupton_rgb``), each positive next to a control -- its own twin for paired
data, otherwise the control closest in r-band magnitude. Positives are typical ones, not
the brightest: half the pairs at the median arc S/N, a quarter near the 10th percentile (the
faint arcs a lens finder must still find) and a quarter near the 90th.

The injection figure: distributions of the positives' Einstein radius, total
magnification, arc S/N and number of images, read from the stamp files' columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.visualization import make_lupton_rgb

from lensfinder import plots
from lensfinder.stamps import iter_row_groups, open_stamps, read_columns, read_row_group

# Relative band scales of the Legacy Surveys viewer (g 6.0 : r 3.4 : z 2.2), so the
# z-band noise does not tint the sky red; stretch and Q in nanomaggies per pixel.
BAND_SCALE = (6.0 / 2.2, 3.4 / 2.2, 1.0)  # g, r, z -> blue, green, red channels
STRETCH, Q = 0.08, 8


def rgb(stamp: np.ndarray, stretch: float = STRETCH) -> np.ndarray:
    """(3, H, W) g,r,z nanomaggies -> (H, W, 3) uint8 asinh colour image (z red, g blue);
    a smaller ``stretch`` (nanomaggies) shows fainter structure."""
    g, r, z = (np.nan_to_num(stamp[i]) * BAND_SCALE[i] for i in range(3))
    return make_lupton_rgb(z, r, g, stretch=stretch, Q=Q)


SNR_QUANTILES = ((0.5, 0.5), (0.1, 0.25), (0.9, 0.25))
"""(arc S/N quantile, share of the gallery's pairs) of the positives shown."""


def pick_pairs(meta: pd.DataFrame, n_pairs: int) -> list[tuple[int, int, str]]:
    """(positive row, control row, S/N label) triples into ``meta`` (needs label,
    sample_id, twin_sample_id, mag_r, arc_snr): for each of SNR_QUANTILES, the positives with
    a partner whose arc S/N is closest to that quantile, in that share of ``n_pairs``."""
    pos = meta[meta["label"] == 1]
    ctl = meta[meta["label"] == 0]
    by_id = pd.Series(ctl.index, index=ctl["sample_id"])
    counts = [int(round(n_pairs * share)) for _, share in SNR_QUANTILES]
    counts[0] += n_pairs - sum(counts)
    pairs, used = [], set()
    for (q, _), n in zip(SNR_QUANTILES, counts):
        if not len(pos) or n <= 0:
            continue
        target = pos["arc_snr"].quantile(q)
        taken = 0
        for i in (pos["arc_snr"] - target).abs().sort_values(kind="stable").index:  # a handful of pairs
            if i in used:
                continue
            row = pos.loc[i]
            if row["twin_sample_id"] >= 0:
                j = by_id.get(row["twin_sample_id"])
            else:
                j = (ctl["mag_r"] - row["mag_r"]).abs().idxmin() if len(ctl) else None
            if j is not None and not pd.isna(j):
                pairs.append((i, int(j), f"S/N p{int(q * 100)}"))
                used.add(i)
                taken += 1
            if taken == n:
                break
    return pairs


def write_gallery(stamp_paths, out_png, n_pairs: int = 12, title: str = "") -> int:
    """PNG of up to ``n_pairs`` positive/control pairs from the first row groups of the
    stamp files. Returns the number of pairs drawn."""
    metas, stamps = [], []
    cols = ["label", "sample_id", "twin_sample_id", "mag_r", "arc_snr", "theta_e", "mu_total", "split"]
    for path in stamp_paths:
        for meta, st in iter_row_groups(path, columns=cols, row_groups=[0] if _n_groups(path) else []):
            metas.append(meta.to_pandas())
            stamps.append(st)
    if not metas:
        meta, st = pd.DataFrame(columns=cols), np.zeros((0, 3, 64, 64), np.float32)
    else:
        meta, st = pd.concat(metas, ignore_index=True), np.concatenate(stamps)
    pairs = pick_pairs(meta, n_pairs)
    images = [(rgb(st[i]), f"lens  θE={meta.theta_e[i]:.1f}\"  μ={meta.mu_total[i]:.1f}\n"
                           f"S/N={meta.arc_snr[i]:.0f} ({tag})  {meta.split[i]}",
               rgb(st[j]), f"control  r={meta.mag_r[j]:.1f}\n{meta.split[j]}") for i, j, tag in pairs]
    plots.pair_gallery(images, out_png, title or "positives (left) and controls (right), asinh g,r,z")
    return len(pairs)


INJECTION_COLUMNS = ("theta_e", "lens_sigma", "mu_total", "arc_snr", "n_images", "src_mag_r", "draw_attempt")


def injection_table(stamp_paths) -> pd.DataFrame:
    """INJECTION_COLUMNS of every positive in the stamp files (metadata only, no pixels)."""
    t = read_columns(stamp_paths, ["label", *INJECTION_COLUMNS]).to_pandas()
    return t.loc[t["label"] == 1, list(INJECTION_COLUMNS)].reset_index(drop=True)


def write_injection_figure(stamp_paths, out_png, title: str = "") -> int:
    """PNG of the positives' theta_E, lens velocity dispersion, total magnification, arc S/N,
    image-count and unlensed-magnitude distributions. Returns the number of positives."""
    t = injection_table(stamp_paths)
    plots.injection_distributions(t, out_png, title or "injected positives")
    return len(t)


def _n_groups(path) -> int:
    return open_stamps(path).num_row_groups


def stamps_of_rows(stamp_paths, ids, key: str = "sample_id") -> dict[int, np.ndarray]:
    """{id: (3, 64, 64) stamp} of the rows whose ``key`` column is in ``ids``, read one row
    group at a time."""
    want = np.asarray(list(ids), dtype=np.int64)
    out = {}
    for path in stamp_paths:
        # ids first, pixels only of the row groups that hold a wanted row: a gallery of a
        # few dozen stamps out of tens of thousands decodes a few row groups, not the file
        pf = open_stamps(path)
        groups = [i for i in range(pf.num_row_groups)
                  if np.isin(read_row_group(pf, path, i, [key])[key].to_numpy(), want).any()]
        for t, st in iter_row_groups(path, columns=[key], row_groups=groups):
            got = t[key].to_numpy()
            for i in np.flatnonzero(np.isin(got, want)):
                out[int(got[i])] = st[i].copy()
    return out


def population_grid(shown: pd.DataFrame, stamp_paths, out_png, title: str, per_population: int, caption) -> None:
    """PNG with one row of up to ``per_population`` thumbnails per population of ``shown``
    (sample_id, population, ...), each captioned ``caption(row)``."""
    stamps = stamps_of_rows(stamp_paths, shown["sample_id"])
    images = []
    for _, rows in shown.groupby("population", sort=True):
        row = [(rgb(stamps[int(r.sample_id)]), caption(r)) for r in rows.itertuples()]
        images += row + [(np.zeros((64, 64, 3), np.uint8), "")] * (per_population - len(row))
    plots.image_grid(images, out_png, title, cols=per_population)


def write_population_gallery(stamp_paths, out_png, per_population: int = 8, title: str = "") -> dict:
    """PNG of the first ``per_population`` controls (by sample_id) of every population of
    the stamp files -- one row per false-positive population, the look-alikes a lens finder
    must reject. Returns {population: controls in the files}."""
    meta = read_columns(stamp_paths, ["sample_id", "label", "population"]).to_pandas()
    ctl = meta[meta["label"] == 0].sort_values("sample_id", kind="stable")
    shown = ctl.groupby("population", sort=True).head(per_population)
    population_grid(shown, stamp_paths, out_png, title or "controls by population (asinh g,r,z)", per_population,
                    lambda r: f"{r.population}\n{int(r.sample_id)}")
    return {str(k): int(v) for k, v in ctl["population"].value_counts().sort_index().items()}
