"""What is on one mock brick: the objects, their photometry, and what the sweep catalogues.

Objects: LRG-like galaxies drawn like DESI LRG targets (:mod:`lensfinder.sky.lrg_model`) at
``lrg_density``, never closer than ``lrg_min_sep_arcsec`` except physical pairs; field
galaxies and stars from published number counts to r = 25 (:mod:`lensfinder.sky.counts`);
a configurable fraction of the LRG-like galaxies host a look-alike feature whose light is
in the images but not in the catalogue (:mod:`lensfinder.sky.false_positives`). Catalogue
fluxes are the true fluxes plus noise drawn from FLUX_IVAR, so catalogue and images agree;
an object is catalogued when it is detected (S/N >= ``detect_snr`` in g, r or z), as a
Tractor catalogue holds only detections, while fainter objects still add their light to
the coadds. A fraction of galaxies carry catalogue pathologies (no coverage in a band, zero
ivar, negative flux, masked) so every quality cut of phase 3 has something to cut.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from lensfinder import BANDS, PIXSCALE
from lensfinder.photometry import depth_mag_to_ivar, flux_to_mag, mag_to_flux, mw_transmission
from lensfinder.sky.bricks import brick_wcs
from lensfinder.sky.columns import MASKBITS, MOCK_POPULATION_COLUMN, SWEEP_COLUMNS
from lensfinder.sky.counts import GALAXY_COUNTS, STAR_COUNTS, draw_magnitudes
from lensfinder.sky.false_positives import assign_populations, feature_light
from lensfinder.sky.lrg_model import draw_lrgs
from lensfinder.sky.mock_config import MockSkyConfig, brick_rngs, mock_brickid
from lensfinder.sky.profiles import brick_conditions, fiber_fraction
from lensfinder.sky.shapes import axis_ratio_angle, ellipticity

RELEASE_DR10_SOUTH = 10000
GALDEPTH_REFERENCE_RE_ARCSEC = 0.45  # GALDEPTH is defined for a round exp galaxy of this size
PSF_REACH_PIX = 12  # an object's light reaches this far plus 5 half-light radii (cf. render)


def place_lrgs(rng: np.random.Generator, cfg: MockSkyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (x, y) of the brick's LRG-like galaxies: Poisson in number at ``lrg_density``,
    placed by random sequential addition no closer than ``lrg_min_sep_arcsec``, then a
    ``lrg_pair_fraction`` of them given a companion ``lrg_pair_sep_arcsec`` away."""
    size = cfg.brick_size_pix
    n = int(rng.poisson(cfg.lrg_density * cfg.brick_area_deg2 / (1 + cfg.lrg_pair_fraction)))
    cand = rng.uniform(3, size - 4, (4 * n + 16, 2))
    min_sep2 = (cfg.lrg_min_sep_arcsec / PIXSCALE) ** 2
    kept = np.empty((0, 2))
    for c in cand:  # ~100-200 per brick: a loop over candidates is cheap
        if len(kept) == n:
            break
        if not len(kept) or ((kept - c) ** 2).sum(axis=1).min() >= min_sep2:
            kept = np.vstack([kept, c])
    primaries = kept[rng.random(len(kept)) < cfg.lrg_pair_fraction]
    sep = rng.uniform(*cfg.lrg_pair_sep_arcsec, len(primaries)) / PIXSCALE
    pa = rng.uniform(0, 2 * np.pi, len(primaries))
    mates = np.clip(primaries + np.stack([sep * np.cos(pa), sep * np.sin(pa)], 1), 3, size - 4)
    xy = np.vstack([kept, mates])
    return xy[:, 0], xy[:, 1]


def _field_galaxies(rng, cfg: MockSkyConfig) -> dict:
    """Field galaxies from the counts: red (de Vaucouleurs) or blue (exponential) by a
    red fraction falling from 35% at r = 18 to 10% at r >= 24.3; half-light radius from a
    size-magnitude relation (median 0.8" at r = 20, 0.1 dex fainter per mag, 0.18 dex
    scatter: an approximate fit of the kind measured in deep HST fields). Colours keep
    r - W1 < 1.6 and g - W1 < 2.8, so no field galaxy passes the LRG colour cuts."""
    r = draw_magnitudes(rng, GALAXY_COUNTS, cfg.brick_area_deg2, *cfg.field_mag_range)
    n = r.size
    red = rng.random(n) < np.clip(0.35 - 0.04 * (r - 18), 0.10, 0.35)
    g_r = np.clip(np.where(red, rng.normal(1.0, 0.12, n), rng.normal(0.45, 0.2, n)), -0.2, 1.3)
    r_z = np.clip(np.where(red, rng.normal(0.7, 0.12, n), rng.normal(0.35, 0.2, n)), -0.3, 1.1)
    z_w1 = np.minimum(np.where(red, rng.normal(0.2, 0.25, n), rng.normal(-0.3, 0.35, n)), 1.5 - r_z)
    re = np.clip(10 ** (np.log10(0.8) - 0.1 * (r - 20) + rng.normal(0, 0.18, n)), 0.1, 8.0)
    types = np.where(red, "DEV", np.where(re < 0.4, "REX", "EXP"))
    z = r - r_z
    return {"g": r + g_r, "r": r, "z": z, "w1": z - z_w1, "re": re, "sersic": np.where(red, 4.0, 1.0),
            "type": types, "emax": np.where(types == "REX", 0.0, 0.6), "pop": np.full(n, "galaxy")}


def _stars(rng, cfg: MockSkyConfig) -> dict:
    """Stars from the counts (from r = 12), plus ``n_bright_star`` at r = 11-13."""
    r = np.concatenate([draw_magnitudes(rng, STAR_COUNTS, cfg.brick_area_deg2, 12.0, cfg.field_mag_range[1]),
                        rng.uniform(11.0, 13.0, cfg.n_bright_star)])
    n = r.size
    z = r - rng.normal(0.35, 0.25, n)
    return {"g": r + rng.normal(0.7, 0.3, n), "r": r, "z": z, "w1": z + rng.normal(0.6, 0.2, n),
            "re": np.zeros(n), "sersic": np.zeros(n), "type": np.full(n, "PSF"), "emax": np.zeros(n),
            "pop": np.full(n, "star")}


def _lrgs(rng, n: int) -> dict:
    lrg = draw_lrgs(rng, n)
    emax = np.where(np.isin(lrg["type"], ("DEV", "EXP")), 0.35, 0.0)
    return {**{k: lrg[k] for k in ("g", "r", "z", "w1", "re", "sersic", "type")}, "emax": emax,
            "pop": np.full(n, "lrg")}


def draw_objects(rng, cfg: MockSkyConfig) -> tuple[dict, np.ndarray, np.ndarray]:
    """Every object of the brick (intrinsic magnitudes, shapes, population) and its pixel
    position; LRG-like galaxies first."""
    lx, ly = place_lrgs(rng, cfg)
    parts = [_lrgs(rng, lx.size)] + ([_field_galaxies(rng, cfg), _stars(rng, cfg)] if cfg.field_objects else [])
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n_other = len(cat["g"]) - lx.size
    x = np.concatenate([lx, rng.uniform(3, cfg.brick_size_pix - 4, n_other)])
    y = np.concatenate([ly, rng.uniform(3, cfg.brick_size_pix - 4, n_other)])
    cat["w2"] = cat["w1"] + rng.normal(0.5, 0.1, len(x))
    e = rng.uniform(0, 1, len(x)) * cat["emax"]
    cat["e1"], cat["e2"] = ellipticity((1 - e) / (1 + e), rng.uniform(0, np.pi, len(x)))
    return cat, x, y


def _photo_z(rng: np.random.Generator, cat: dict) -> np.ndarray:
    """Mock photo-z medians. LRGs: redshift grows with r - z (the 4000 A break moving
    through the bands) and with faintness, so the selected LRGs span z ~ 0.4-0.95 like
    DESI's (Zhou et al. 2023); a mock relation, not a fit. Other objects: broad."""
    z_lrg = 0.65 + 0.5 * (cat["r"] - cat["z"] - 1.65) + 0.12 * (cat["z"] - 19.8)
    z = np.where(cat["pop"] == "lrg", z_lrg, rng.uniform(0.05, 1.5, len(z_lrg)))
    return np.clip(z + rng.normal(0.0, 0.03, len(z)), 0.02, 1.6)


def _stripes(rng, cfg: MockSkyConfig) -> dict[str, tuple[int, int]]:
    """No-coverage stripes (a missing CCD) per band: objects there have NOBS = 0 and no flux."""
    stripes = {}
    for b in BANDS:
        if rng.random() < cfg.no_coverage_stripe_prob:
            x0 = int(rng.integers(0, cfg.brick_size_pix - 24))
            stripes[b] = (x0, x0 + 24)
    return stripes


def _photometry(rng, cat: dict, cond: dict, x, ebv, r_circ, fiber_frac, stripes: dict) -> tuple[dict, dict]:
    """(FLUX/IVAR/MW_TRANSMISSION/NOBS/FIBER/PSF/GALDEPTH sweep columns, observed (reddened)
    noise-free fluxes per band as in the images), nanomaggies."""
    n = len(x)
    cols, true_flux = {}, {}
    for b in BANDS + ("w1", "w2"):
        B = b.upper()
        trans = mw_transmission(ebv, b)
        flux = mag_to_flux(cat[b]) * trans
        true_flux[b] = flux
        if b in BANDS:
            c = cond[b]
            sig_eff2 = c["sigma_psf_pix"] ** 2 + (r_circ / 1.1774 / PIXSCALE) ** 2
            ivar = 1.0 / (c["sigma_pix"] ** 2 * 4 * np.pi * sig_eff2)
        else:
            # unWISE W1/W2 5-sigma depths ~20.7 / 20.0 AB for DR10 depth of coverage
            ivar = np.full(n, float(depth_mag_to_ivar(20.7 if b == "w1" else 20.0)))
        ivar = ivar * rng.uniform(0.8, 1.2, n)
        measured = flux + rng.normal(0, 1, n) / np.sqrt(ivar)
        cols[f"FLUX_{B}"] = measured.astype(np.float32)
        cols[f"FLUX_IVAR_{B}"] = ivar.astype(np.float32)
        cols[f"MW_TRANSMISSION_{B}"] = trans.astype(np.float32)
        if b in BANDS:
            cols.update(_optical_columns(rng, B, cond[b], measured, fiber_frac, n))
            if b in stripes:
                inside = (x >= stripes[b][0] - 0.5) & (x < stripes[b][1] - 0.5)
                for key in (f"FLUX_{B}", f"FLUX_IVAR_{B}", f"NOBS_{B}", f"FIBERFLUX_{B}", f"FIBERTOTFLUX_{B}",
                            f"PSFSIZE_{B}", f"PSFDEPTH_{B}", f"GALDEPTH_{B}"):
                    cols[key][inside] = 0
    return cols, true_flux


def _optical_columns(rng, B: str, c: dict, measured, fiber_frac, n: int) -> dict:
    """NOBS, fibre fluxes and PSF / galaxy depths of one optical band."""
    ref = GALDEPTH_REFERENCE_RE_ARCSEC / 1.1774 / PIXSCALE
    galdepth = 1.0 / (c["sigma_pix"] ** 2 * 4 * np.pi * (c["sigma_psf_pix"] ** 2 + ref**2))
    return {f"NOBS_{B}": rng.integers(2, 6, n).astype(np.int16),
            f"FIBERFLUX_{B}": (measured * fiber_frac).astype(np.float32),
            f"FIBERTOTFLUX_{B}": (measured * fiber_frac * (1 + rng.uniform(0, 0.15, n))).astype(np.float32),
            f"PSFSIZE_{B}": np.full(n, c["psf_fwhm"], dtype=np.float32),
            f"PSFDEPTH_{B}": np.full(n, c["psfdepth"], dtype=np.float32),
            f"GALDEPTH_{B}": np.full(n, galdepth, dtype=np.float32)}


def _gaia_and_masks(rng, cfg: MockSkyConfig, x, y, is_gal, r_flux) -> dict:
    """GAIA_PHOT_G_MEAN_MAG, REF_CAT and MASKBITS: stars brighter than G~20.8 are matched,
    a few compact galaxies too; BRIGHT within the Legacy Surveys bright-star radius
    1630" * 1.396**-G of a G < 13 star; GALAXY/CLUSTER/ALLMASK/MEDIUM on a fraction of galaxies."""
    n = len(x)
    rmag_obs = flux_to_mag(r_flux)
    gaia = np.zeros(n, dtype=np.float32)
    star = ~is_gal
    gaia[star] = np.where(rmag_obs[star] + 0.25 < 20.8, rmag_obs[star] + 0.25, 0.0)
    gal_idx = np.flatnonzero(is_gal)
    lucky = gal_idx[rng.random(gal_idx.size) < 0.03]
    gaia[lucky] = rng.uniform(18.2, 21.0, lucky.size)
    bright_gal = gal_idx[rng.random(gal_idx.size) < 0.005]
    gaia[bright_gal] = rng.uniform(16.5, 18.0, bright_gal.size)  # fail the Gaia G > 18 cut
    maskbits = np.zeros(n, dtype=np.int32)
    for i in np.flatnonzero(star & (gaia > 0) & (gaia < 13)):
        radius_pix = 1630.0 * 1.396 ** (-float(gaia[i])) / PIXSCALE
        maskbits[np.hypot(x - x[i], y - y[i]) < radius_pix] |= 1 << MASKBITS["BRIGHT"]
    for bit in ("GALAXY", "CLUSTER", "ALLMASK_G", "ALLMASK_R", "ALLMASK_Z", "MEDIUM"):
        maskbits[is_gal & (rng.random(n) < cfg.frac_masked)] |= 1 << MASKBITS[bit]
    return {"GAIA_PHOT_G_MEAN_MAG": gaia, "REF_CAT": np.where(gaia > 0, "GE", "").astype("U2"), "MASKBITS": maskbits}


def _add_pathologies(rng, cfg: MockSkyConfig, cols: dict, is_gal) -> None:
    """Catalogue pathologies on a fraction of galaxies, one quality cut each."""
    gal_idx = np.flatnonzero(is_gal)
    bad = gal_idx[rng.random(gal_idx.size) < cfg.frac_bad_quality]
    kinds = rng.integers(0, 5, bad.size)
    cols["FLUX_R"][bad[kinds == 0]] *= -1.0
    cols["FLUX_IVAR_Z"][bad[kinds == 1]] = 0.0
    for key in ("NOBS_G", "FLUX_G", "FLUX_IVAR_G"):
        cols[key][bad[kinds == 2]] = 0
    cols["FLUX_IVAR_W1"][bad[kinds == 3]] = 0.0
    cols["FIBERFLUX_Z"][bad[kinds == 4]] = 0.0


def detected(cols: dict, snr: float) -> np.ndarray:
    """Objects a Tractor catalogue would hold: S/N >= ``snr`` in g, r or z."""
    return np.logical_or.reduce([cols[f"FLUX_{b}"] * np.sqrt(cols[f"FLUX_IVAR_{b}"]) >= snr for b in "GRZ"])


def near_windows(x, y, wx, wy, half) -> np.ndarray:
    """Objects within ``half`` pixels (Chebyshev; scalar or per object) of any window
    centre (wx, wy)."""
    if not len(wx):
        return np.zeros(len(x), dtype=bool)
    dist, _ = cKDTree(np.stack([wx, wy], 1)).query(np.stack([x, y], 1), p=np.inf)
    return dist <= half


def _catalogue_columns(cfg: MockSkyConfig, brickname: str, cat: dict, ra, dec, ebv) -> dict:
    n = len(ra)
    return {"RELEASE": np.full(n, RELEASE_DR10_SOUTH, dtype=np.int16),
            "BRICKID": np.full(n, mock_brickid(cfg, brickname), dtype=np.int32),
            "BRICKNAME": np.full(n, brickname), "OBJID": np.zeros(n, dtype=np.int32),
            "TYPE": cat["type"].astype("U3"), "RA": np.mod(ra, 360.0), "DEC": dec, "EBV": ebv.astype(np.float32),
            "SHAPE_R": cat["re"].astype(np.float32), "SHAPE_E1": cat["e1"].astype(np.float32),
            "SHAPE_E2": cat["e2"].astype(np.float32), "SERSIC": cat["sersic"].astype(np.float32),
            "MOCK_POP": cat["pop"]}


def make_brick_catalog(cfg: MockSkyConfig, brickname: str) -> tuple[dict, dict]:
    """Catalogue of one mock brick and what its coadds show.

    Returns (sweep columns as numpy arrays + the ``MOCK_*`` truth columns, one row per
    detected object in OBJID order; render info: pixel position, noise-free observed flux
    per band in nanomaggies, shape and Sersic n of every object whose light reaches a
    window -- detected or not -- then of the uncatalogued look-alike light, plus the
    brick's conditions, stripes and window centres). Every draw comes from the brick's
    generators, in a fixed order."""
    rng = brick_rngs(cfg, brickname, 4)[1]
    cond = brick_conditions(cfg, brickname)
    cat, x, y = draw_objects(rng, cfg)
    ra, dec = brick_wcs(brickname, cfg.brick_size_pix).all_pix2world(x, y, 0)
    ebv = np.full(len(x), cond["ebv"])
    is_gal, is_lrg = cat["pop"] != "star", cat["pop"] == "lrg"
    q, _ = axis_ratio_angle(np.asarray(cat["e1"], np.float64), np.asarray(cat["e2"], np.float64))
    r_circ = cat["re"] * np.sqrt(q)
    stripes = _stripes(rng, cfg)
    cols = _catalogue_columns(cfg, brickname, cat, ra, dec, ebv)
    phot, true_flux = _photometry(rng, cat, cond, x, ebv, r_circ, fiber_fraction(cat["sersic"], r_circ), stripes)
    cols.update(phot)
    cols.update(_gaia_and_masks(rng, cfg, x, y, is_gal, true_flux["r"]))
    _add_pathologies(rng, cfg, cols, is_gal)
    fp_rng = brick_rngs(cfg, brickname, 6)[5]
    cols[MOCK_POPULATION_COLUMN] = assign_populations(fp_rng, is_lrg, cfg.false_positives)
    features, extra = feature_light(fp_rng, cols[MOCK_POPULATION_COLUMN], x, y, cond["ebv"], cfg.false_positives)
    cols.update({f"MOCK_EXTRA_FLUX_{b.upper()}": extra[b].astype(np.float32) for b in BANDS})
    observed = np.logical_and.reduce([cols[f"NOBS_{b}"] > 0 for b in "GRZ"])
    cols["MOCK_Z_PHOT"] = np.where(observed, _photo_z(brick_rngs(cfg, brickname, 5)[4], cat), -99.0).astype(np.float32)

    keep = np.flatnonzero(detected(cols, cfg.detect_snr) | is_lrg)
    keep = keep[rng.permutation(keep.size)]  # Tractor OBJIDs carry no population information
    cols = {k: np.asarray(v)[keep] for k, v in cols.items()}
    cols["OBJID"] = np.arange(keep.size, dtype=np.int32)
    for name, (dtype, _) in SWEEP_COLUMNS.items():
        cols[name] = np.asarray(cols[name]).astype(dtype)

    wx, wy = x[is_lrg], y[is_lrg]
    seen = near_windows(x, y, wx, wy, cfg.window_pix / 2 + PSF_REACH_PIX + 5 * cat["re"] / PIXSCALE)
    render = {k: np.concatenate([np.asarray(v)[seen], features[k]]) for k, v in
              (("x", x), ("y", y), ("re", cat["re"]), ("e1", cat["e1"]), ("e2", cat["e2"]), ("sersic", cat["sersic"]))}
    render["flux"] = {b: np.concatenate([true_flux[b][seen], features["flux"][b]]) for b in BANDS}
    render.update({"cond": cond, "stripes": stripes, "windows": (wx, wy), "n_features": len(features["x"])})
    return cols, render
