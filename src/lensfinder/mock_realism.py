"""How much the mock sky looks like DR10 around an LRG: measured from its sweeps, its
catalogue truth and the parent sample, beside the references it is drawn to follow.

Everything here reads files (the sweeps and coadds the mock wrote, phase 3's parent sample)
and returns plain numbers; ``benchmarks/mock_realism.py`` writes them as JSON with a figure
and a gallery. References: the number counts of :mod:`lensfinder.sky.counts`, desitarget's
model of DESI LRG targets (:mod:`lensfinder.sky.lrg_model`) put through phase 3's colour
cuts, DESI's LRG target density (605 per deg^2, Zhou et al. 2023, AJ 165, 58) and the sky
rates of the look-alike populations (:data:`lensfinder.sky.false_positives.SKY_RATES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from astropy.io import fits
from scipy.spatial import cKDTree

from lensfinder import PIXSCALE, STAMP_SIZE
from lensfinder.gallery import rgb
from lensfinder.photometry import flux_to_mag, ivar_to_depth_mag
from lensfinder.select import lrg_criteria
from lensfinder.sky.coadds import CoaddBrick
from lensfinder.sky.counts import GALAXY_COUNTS, STAR_COUNTS
from lensfinder.sky.false_positives import POPULATIONS, SKY_RATES
from lensfinder.sky.lrg_model import draw_lrgs
from lensfinder.sky.profiles import fiber_fraction

DESI_LRG_DENSITY = 605.0  # targets per deg^2 (Zhou et al. 2023)
NEIGHBOUR_RADIUS_ARCSEC = 8.4  # half a 64-pixel stamp
MAG_BINS = np.arange(14.0, 26.01, 0.5)
NEIGHBOUR_BINS = (-np.inf, 20.0, 21.0, 22.0, 23.0, np.inf)
PROPERTIES = ("mag_z", "r_z", "z_w1", "zfiber", "shape_r")
PERCENTILES = (10, 50, 90)


@dataclass
class Sweeps:
    """The catalogued objects of the mock's sweeps: extinction-corrected AB magnitudes
    (NaN where the flux is not positive), position (deg) and the r-band PSF depth."""

    ra: np.ndarray
    dec: np.ndarray
    mag: dict[str, np.ndarray]
    depth_r: np.ndarray

    @classmethod
    def read(cls, paths) -> "Sweeps":
        cols: dict[str, list] = {}
        names = ["RA", "DEC", "PSFDEPTH_R"] + [f"{k}_{b}" for k in ("FLUX", "MW_TRANSMISSION") for b in "GRZ"]
        for p in paths:
            with fits.open(p, memmap=False) as hdul:
                for k in names:
                    cols.setdefault(k, []).append(np.asarray(hdul[1].data[k], dtype=np.float64))
        c = {k: np.concatenate(v) for k, v in cols.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = {b: np.where(c[f"FLUX_{b.upper()}"] > 0,
                               flux_to_mag(c[f"FLUX_{b.upper()}"] / c[f"MW_TRANSMISSION_{b.upper()}"]), np.nan)
                   for b in "grz"}
        return cls(c["RA"], c["DEC"], mag, c["PSFDEPTH_R"])


def number_counts(sweeps: Sweeps, stars_r: np.ndarray, area_deg2: float) -> dict:
    """Objects per deg^2 per r magnitude in 0.5-mag bins, sweep (all catalogued objects) and
    stars (catalogue truth), beside the reference tables; the detection limit is the median
    5-sigma r PSF depth; ``within_1p5`` checks every bin from r = 18 up to that limit."""
    lo, hi = MAG_BINS[:-1], MAG_BINS[1:]
    width = np.diff(MAG_BINS)
    sweep = np.histogram(sweeps.mag["r"][np.isfinite(sweeps.mag["r"])], MAG_BINS)[0] / area_deg2 / width
    stars = np.histogram(stars_r, MAG_BINS)[0] / area_deg2 / width
    ref_gal = np.array([GALAXY_COUNTS.integral(a, b) for a, b in zip(lo, hi)]) / width
    ref_star = np.array([STAR_COUNTS.integral(a, b) for a, b in zip(lo, hi)]) / width
    ref = ref_gal + ref_star
    depth = sweeps.depth_r[sweeps.depth_r > 0]
    limit = float(np.median(ivar_to_depth_mag(depth)))
    checked = (lo >= 18.0) & (hi <= limit)
    ratio = sweep / ref
    faint = ~(sweeps.mag["r"] <= 23.0)  # r fainter than 23, or no positive r flux
    return {"bins_r": lo.tolist(), "sweep_per_deg2_per_mag": sweep.round(1).tolist(),
            "reference_per_deg2_per_mag": ref.round(1).tolist(), "ratio": ratio.round(3).tolist(),
            "stars_per_deg2_per_mag": stars.round(1).tolist(), "star_reference_per_deg2_per_mag": ref_star.round(1).tolist(),
            "detection_limit_r": round(limit, 2), "checked_bins": lo[checked].tolist(),
            "within_1p5": bool(np.all((ratio[checked] < 1.5) & (ratio[checked] > 1 / 1.5))),
            "fraction_fainter_than_r23": round(float(faint.mean()), 4), "n_sweep_objects": int(len(faint))}


def neighbours(parents: pd.DataFrame, sweeps: Sweeps) -> dict:
    """Catalogued objects within 8.4" of each parent LRG (itself excluded), per LRG, by r
    magnitude bin; and the fraction of 64 x 64 stamps in which the LRG is the brightest
    catalogued object in r and in z."""
    dec0 = np.deg2rad(np.median(parents["dec"]))
    def xy(ra, dec):
        return np.stack([ra * np.cos(dec0), dec], 1) * 3600.0
    tree = cKDTree(xy(sweeps.ra, sweeps.dec))
    p = xy(parents["ra"].to_numpy(), parents["dec"].to_numpy())
    near = tree.query_ball_point(p, NEIGHBOUR_RADIUS_ARCSEC)
    half = STAMP_SIZE / 2 * PIXSCALE
    in_box = tree.query_ball_point(p, half * np.sqrt(2))
    counts = np.zeros(len(NEIGHBOUR_BINS) - 1)
    brightest = {"r": 0, "z": 0}
    pmag = {"r": parents["mag_r"].to_numpy(), "z": parents["mag_z"].to_numpy()}
    for i, (idx, box) in enumerate(zip(near, in_box)):
        others = [j for j in idx if np.hypot(*(tree.data[j] - p[i])) > 0.05]
        counts += np.histogram(sweeps.mag["r"][others], NEIGHBOUR_BINS)[0]
        inside = [j for j in box if np.all(np.abs(tree.data[j] - p[i]) < half) and np.hypot(*(tree.data[j] - p[i])) > 0.05]
        for b in brightest:
            brightest[b] += not np.any(sweeps.mag[b][inside] < pmag[b][i])
    n = max(len(parents), 1)
    labels = ["r<20", "20-21", "21-22", "22-23", "r>23 or no r flux"]
    per = dict(zip(labels, (counts / n).round(4).tolist()))
    return {"radius_arcsec": NEIGHBOUR_RADIUS_ARCSEC, "per_lrg_by_r": per,
            "brighter_than_r22_per_lrg": round(float(counts[:3].sum() / n), 4),
            "lrg_brightest_in_stamp_fraction": {b: round(v / n, 4) for b, v in brightest.items()}}


def reference_lrg_properties(n: int = 200_000, seed: int = 1) -> pd.DataFrame:
    """desitarget's DESI LRG target model, noise-free, through phase 3's colour cuts:
    the reference the parent sample is compared with (fibre magnitude as the mock computes it)."""
    lrg = draw_lrgs(np.random.default_rng(seed), n)
    zfib = lrg["z"] - 2.5 * np.log10(fiber_fraction(lrg["sersic"], lrg["re"]))
    flux = {b: 10 ** (-0.4 * (lrg[b] - 22.5)) for b in ("g", "r", "z", "w1")}
    cols = {f"FLUX_{b.upper()}": v for b, v in flux.items()}
    cols.update({f"FLUX_IVAR_{b.upper()}": np.ones(n) for b in ("g", "r", "z", "w1")})
    cols.update({f"MW_TRANSMISSION_{b.upper()}": np.ones(n) for b in ("g", "r", "z", "w1")})
    cols.update({"FIBERFLUX_Z": 10 ** (-0.4 * (zfib - 22.5)), "FIBERTOTFLUX_Z": 10 ** (-0.4 * (zfib - 22.5)),
                 "GAIA_PHOT_G_MEAN_MAG": np.zeros(n), "MASKBITS": np.zeros(n, dtype=np.int32),
                 **{f"NOBS_{b}": np.ones(n) for b in "GRZ"}})
    keep = np.logical_and.reduce(list(lrg_criteria(cols).values()))
    return pd.DataFrame({"mag_z": lrg["z"], "r_z": lrg["r"] - lrg["z"], "z_w1": lrg["z"] - lrg["w1"],
                         "zfiber": zfib, "shape_r": lrg["re"]})[keep]


def lrg_properties(parents: pd.DataFrame, reference: pd.DataFrame, area_deg2: float) -> dict:
    """Parent density and the 10/50/90th percentiles of z mag, r - z, z - W1, z fibre mag
    and half-light radius, mock parents beside the reference."""
    mine = pd.DataFrame({"mag_z": parents["mag_z"], "r_z": parents["mag_r"] - parents["mag_z"],
                         "z_w1": parents["mag_z"] - parents["mag_w1"],
                         "zfiber": flux_to_mag(parents["zfiberflux"].to_numpy()), "shape_r": parents["shape_r"]})
    pct = {k: {"mock": np.percentile(mine[k], PERCENTILES).round(3).tolist(),
               "desi_model": np.percentile(reference[k], PERCENTILES).round(3).tolist()} for k in PROPERTIES}
    density = len(parents) / area_deg2
    return {"parent_density_per_deg2": round(density, 1), "desi_target_density_per_deg2": DESI_LRG_DENSITY,
            "oversampling_vs_desi": round(density / DESI_LRG_DENSITY, 2), "n_parents": int(len(parents)),
            "area_deg2": round(area_deg2, 4), "percentiles": PERCENTILES, "properties": pct}


def population_rates(parents: pd.DataFrame) -> dict:
    """Each look-alike population's share of the parent sample (the mock's training rate)
    beside its documented sky rate."""
    share = parents["population"].value_counts(normalize=True)
    return {p: {"mock": round(float(share.get(p, 0.0)), 4), "sky": SKY_RATES[p]} for p in POPULATIONS}


def read_parents(path) -> pd.DataFrame:
    return pq.read_table(path, columns=["ra", "dec", "brickname", "mag_r", "mag_z", "mag_w1", "zfiberflux",
                                        "shape_r", "population"]).to_pandas()


FAINT_STRETCH = 0.03  # nanomaggies: a quarter of the galleries' default, shows r ~ 25 mag/arcsec^2


def gallery_rows(parents: pd.DataFrame, n_random: int = 48, per_population: int = 8, seed: int = 0) -> pd.DataFrame:
    """``n_random`` parent LRGs drawn at random (no selection), then ``per_population``
    random members of each look-alike population, with a caption each."""
    rng = np.random.default_rng(seed)
    picks = [parents.iloc[rng.choice(len(parents), min(n_random, len(parents)), replace=False)].assign(
        caption=lambda d: "random " + d["population"].str.replace("ordinary", "LRG"))]
    for p in POPULATIONS:
        members = parents[parents["population"] == p]
        take = rng.choice(len(members), min(per_population, len(members)), replace=False)
        picks.append(members.iloc[take].assign(caption=p))
    return pd.concat(picks, ignore_index=True)


def gallery_stamps(rows: pd.DataFrame, coadd_dir) -> list[tuple[np.ndarray, str]]:
    """(rgb at the faint stretch, caption) of each row's 64 x 64 coadd cutout, in row order."""
    images: dict[int, tuple[np.ndarray, str]] = {}
    for brick, group in rows.groupby("brickname"):
        cut = CoaddBrick(coadd_dir, brick).cutouts(group["ra"].to_numpy(), group["dec"].to_numpy(), STAMP_SIZE)
        for k, (i, row) in enumerate(group.iterrows()):
            images[i] = (rgb(cut.image[k], stretch=FAINT_STRETCH), row["caption"])
    return [images[i] for i in rows.index]
