"""The built-in mock DR10 sky.

Writes exactly the raw DR10 formats the real-data readers consume -- sweep FITS files
with the Tractor columns of :mod:`lensfinder.sky.columns` and fpacked coadd bricks
(image + invvar per band, TAN WCS at 0.262"/pix) -- from a seeded generator, so the
default pipeline run exercises the real-data code path.

Populations per brick: LRG-like early types (de Vaucouleurs / Sersic, red colours that
pass the DESI LRG cuts at a realistic rate), blue disk galaxies, stars (including bright
Gaia stars that set MASKBITS BRIGHT around them), and a fraction of galaxies with
catalogue pathologies (no coverage in a band, zero ivar, negative flux, masked) so every
quality cut has something to cut. A configurable fraction of the early types host a
false-positive feature (rings, arms, companions, ...: :mod:`lensfinder.sky.false_positives`)
whose light is in the images but not in the catalogue; the truth columns ``MOCK_POPULATION``
and ``MOCK_EXTRA_FLUX_<B>`` name it and its flux. Per-brick PSF FWHM and depth are drawn around DR10
DECaLS values. Images are rendered with that PSF (a Moffat by default, the family the
injected arcs are blurred with: :mod:`lensfinder.psf`), noise follows the invvar maps with
the pixel correlation of resampled coadds (:mod:`lensfinder.noise`), and the catalogue
fluxes are the rendered fluxes plus noise drawn from FLUX_IVAR, so catalogue and images
agree.

Galaxy profiles are rendered as Gaussian mixtures fitted to Sersic profiles (the same
approach as the Tractor, Hogg & Lang 2013), which makes PSF convolution analytic and the
rendering vectorised. This is for the mock only; phase 4c ray-traces exact Sersic sources.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from scipy.optimize import nnls
from scipy.special import gammaincinv

from lensfinder import BANDS, PIXSCALE
from lensfinder.noise import DR10_LAG1, correlate
from lensfinder.photometry import FWHM_PER_SIGMA, depth_mag_to_ivar, flux_to_mag, mag_to_flux, mw_transmission
from lensfinder.psf import PsfConfig, moffat_alpha, moffat_mixture
from lensfinder.sky.bricks import brick_center, brick_wcs, coadd_path, sweep_name
from lensfinder.sky.columns import MASKBITS, MOCK_POPULATION_COLUMN, SWEEP_COLUMNS, fits_format
from lensfinder.sky.false_positives import FalsePositiveConfig, assign_populations, feature_light
from lensfinder.sky.shapes import axis_ratio_angle, covariance_pixels, ellipticity
from lensfinder.tables import atomic_path, write_parquet

RELEASE_DR10_SOUTH = 10000
FIBER_RADIUS_ARCSEC = 0.75
FIBER_SEEING_FWHM_ARCSEC = 1.0
GALDEPTH_REFERENCE_RE_ARCSEC = 0.45  # GALDEPTH is defined for a round exp galaxy of this size


@dataclass(frozen=True)
class MockSkyConfig:
    """Mock sky parameters (the ``sky.mock`` config section). Counts are per brick."""

    seed: int = 20261124
    bricks: tuple[str, ...] = ("1501p020",)
    brick_size_pix: int = 1200
    n_lrg: int = 450
    n_blue: int = 350
    n_star: int = 150
    n_bright_star: int = 1
    frac_bad_quality: float = 0.05
    frac_masked: float = 0.02
    no_coverage_stripe_prob: float = 0.3
    psf_fwhm_mean: dict = field(default_factory=lambda: {"g": 1.45, "r": 1.30, "z": 1.20})
    psf_fwhm_range: tuple[float, float] = (1.0, 1.6)
    depth_mean: dict = field(default_factory=lambda: {"g": 24.5, "r": 23.9, "z": 23.0})
    depth_sigma: float = 0.15
    psf: PsfConfig = PsfConfig()   # gaussian | moffat: the family the arcs are blurred with
    noise_lag1: float = DR10_LAG1  # pixel-noise correlation of the resampled coadds
    false_positives: FalsePositiveConfig = FalsePositiveConfig()  # look-alike hosts: sky.false_positives

    @classmethod
    def from_dict(cls, d: dict) -> "MockSkyConfig":
        d = dict(d)
        d["psf"] = PsfConfig.from_dict(d.get("psf"))
        d["false_positives"] = FalsePositiveConfig.from_dict(d.get("false_positives"))
        if d["psf"].kind == "pixel":
            raise ValueError("sky.mock.psf.kind must be gaussian or moffat (the mock has no survey PSF images)")
        if "bricks" in d:
            d["bricks"] = tuple(d["bricks"])
        if "psf_fwhm_range" in d:
            d["psf_fwhm_range"] = tuple(d["psf_fwhm_range"])
        return cls(**d)


def sweep_names(bricks) -> list[str]:
    """Sorted names of the sweep files that the mock bricks fall in."""
    return sorted({sweep_name(*brick_center(b)) for b in bricks})


def bricks_in_sweep(bricks, sweep: str) -> list[str]:
    """The mock bricks whose centres fall in sweep file ``sweep``."""
    return [b for b in bricks if sweep_name(*brick_center(b)) == Path(sweep).name]


def mock_brickid(cfg: MockSkyConfig, brickname: str) -> int:
    """Mock BRICKID: 1-based position in the configured brick list (real DR10 ids are
    a survey-wide enumeration the mock has no need to reproduce)."""
    return cfg.bricks.index(brickname) + 1


def _rngs(cfg: MockSkyConfig, brickname: str, n: int) -> list[np.random.Generator]:
    ss = np.random.SeedSequence([cfg.seed, zlib.crc32(brickname.encode())])
    return [np.random.default_rng(s) for s in ss.spawn(n)]


@lru_cache(maxsize=64)
def sersic_mog(n: float, n_components: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-mixture approximation of a circular Sersic profile of index ``n`` with unit
    half-light radius, truncated at 8 r_e: (amplitudes summing to 1, variances in r_e^2).
    Fitted once by non-negative least squares on the area-weighted surface brightness."""
    if n <= 0:
        return np.array([1.0]), np.array([0.0])
    r = np.concatenate([np.geomspace(1e-3, 0.1, 60), np.linspace(0.1, 8.0, 400)[1:]])
    bn = gammaincinv(2 * n, 0.5)
    profile = np.exp(-bn * (r ** (1.0 / n) - 1.0))
    lo = -4.0 if n > 2 else -2.0
    var = np.logspace(lo, 1.3, n_components)
    basis = np.exp(-0.5 * r[:, None] ** 2 / var[None, :]) / (2 * np.pi * var[None, :])
    w = np.sqrt(r * np.gradient(r))  # area weighting: fit the light, not the centre
    amps, _ = nnls(basis * w[:, None], profile * w)
    keep = amps > 0
    amps, var = amps[keep], var[keep]
    return amps / amps.sum(), var


def _fiber_fraction(n, r_circ_arcsec) -> np.ndarray:
    """Fraction of a profile's flux inside a 1.5" diameter fibre in 1" FWHM seeing
    (the Legacy Surveys FIBERFLUX definition), for circularised Sersic profiles."""
    s2 = (FIBER_SEEING_FWHM_ARCSEC / FWHM_PER_SIGMA) ** 2
    out = np.empty(len(n))
    for nn in np.unique(n):
        sel = n == nn
        amps, var = sersic_mog(float(nn))
        sig2 = var[None, :] * r_circ_arcsec[sel, None] ** 2 + s2
        out[sel] = (amps[None, :] * (1 - np.exp(-(FIBER_RADIUS_ARCSEC**2) / (2 * sig2)))).sum(axis=1)
    return out


def brick_conditions(cfg: MockSkyConfig, brickname: str) -> dict:
    """Observing conditions of one mock brick: per band PSF FWHM (arcsec), 5-sigma PSF
    depth (AB mag), PSFDEPTH (1/nanomaggies^2), pixel noise sigma (nanomaggies), and EBV."""
    rng = _rngs(cfg, brickname, 4)[0]
    lo, hi = cfg.psf_fwhm_range
    cond = {"ebv": float(rng.uniform(0.01, 0.08))}
    for b in BANDS:
        fwhm = float(np.clip(rng.normal(cfg.psf_fwhm_mean[b], 0.1), lo, hi))
        depth = float(rng.normal(cfg.depth_mean[b], cfg.depth_sigma))
        psfdepth = float(depth_mag_to_ivar(depth))
        amps, var = psf_mixture(cfg.psf, fwhm)
        # sum P^2 of the mixture: PSFDEPTH = that / pixel variance (white pixels, as the
        # Tractor assumes); sigma_psf_pix is the Gaussian width with the same sum
        norm = float((amps[:, None] * amps[None, :] / (2 * np.pi * (var[:, None] + var[None, :]))).sum())
        sigma_pix = float(np.sqrt(norm / psfdepth))
        cond[b] = {"psf_fwhm": fwhm, "depth5": depth, "psfdepth": psfdepth, "sigma_pix": sigma_pix,
                   "sigma_psf_pix": float(np.sqrt(1 / (4 * np.pi * norm))), "psf_amps": amps, "psf_var": var}
    return cond


def psf_mixture(cfg: PsfConfig, fwhm_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """The mock's PSF of FWHM ``fwhm_arcsec`` as circular Gaussians: (weights, variances in
    pixels^2). Moffat: :func:`lensfinder.psf.moffat_mixture` scaled to alpha."""
    if cfg.kind == "gaussian":
        return np.array([1.0]), np.array([(fwhm_arcsec / FWHM_PER_SIGMA / PIXSCALE) ** 2])
    amps, var = moffat_mixture(cfg.moffat_beta)
    return amps / amps.sum(), var * (moffat_alpha(fwhm_arcsec, cfg.moffat_beta) / PIXSCALE) ** 2


def _draw_population(rng: np.random.Generator, kind: str, n: int) -> dict:
    """Intrinsic (de-reddened) AB magnitudes, colours and shapes of one population."""
    if kind == "lrg":
        z = np.clip(20.4 - rng.exponential(0.6, n), 17.8, None)
        r = z + rng.normal(1.65, 0.2, n)
        g = r + rng.normal(1.75, 0.2, n)
        w1 = z - rng.normal(1.65, 0.25, n)
        re = np.exp(rng.normal(np.log(1.0), 0.4, n))
        sersic = np.where(rng.random(n) < 0.85, 4.0, np.round(rng.uniform(2.5, 5.5, n) * 2) / 2)
        types = np.where(sersic == 4.0, "DEV", "SER")
        emax = 0.35
    elif kind == "blue":
        z = np.clip(21.5 - rng.exponential(1.0, n), 17.8, None)
        r = z + rng.normal(0.6, 0.2, n)
        g = r + rng.normal(0.5, 0.15, n)
        w1 = z - rng.normal(0.4, 0.3, n)
        re = np.exp(rng.normal(np.log(0.8), 0.4, n))
        sersic = np.ones(n)
        types = np.where(rng.random(n) < 0.7, "EXP", "REX")
        emax = 0.6
    elif kind in ("star", "bright_star"):
        if kind == "star":
            r = rng.uniform(16.0, 22.0, n)
        else:
            r = rng.uniform(11.0, 13.0, n)
        g = r + rng.normal(0.7, 0.3, n)
        z = r - rng.normal(0.35, 0.25, n)
        w1 = z + rng.normal(0.6, 0.2, n)
        re = np.zeros(n)
        sersic = np.zeros(n)
        types = np.full(n, "PSF")
        emax = 0.0
    else:
        raise ValueError(kind)
    w2 = w1 + rng.normal(0.5, 0.1, n)
    e = rng.uniform(0, emax, n) if emax else np.zeros(n)
    if kind == "blue":
        e[types == "REX"] = 0.0
    theta = rng.uniform(0, np.pi, n)
    e1, e2 = ellipticity((1 - e) / (1 + e), theta)
    return {"g": g, "r": r, "z": z, "w1": w1, "w2": w2, "re": re, "sersic": sersic, "type": types,
            "e1": e1, "e2": e2, "pop": np.full(n, kind)}


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


def make_brick_catalog(cfg: MockSkyConfig, brickname: str) -> tuple[dict, dict]:
    """Catalogue of one mock brick: (sweep columns as numpy arrays + the ``MOCK_*`` truth
    columns, render info with noise-free observed fluxes in nanomaggies and pixel positions
    of the catalogued objects (the first ``n_catalogued``) and of the uncatalogued
    false-positive light after them).
    Every draw comes from the brick's generator, in a fixed order."""
    rng = _rngs(cfg, brickname, 4)[1]
    cond = brick_conditions(cfg, brickname)
    size = cfg.brick_size_pix
    pops = [_draw_population(rng, k, n) for k, n in
            (("lrg", cfg.n_lrg), ("blue", cfg.n_blue), ("star", cfg.n_star), ("bright_star", cfg.n_bright_star))]
    cat = {k: np.concatenate([p[k] for p in pops]) for k in pops[0]}
    n = len(cat["g"])
    order = rng.permutation(n)  # Tractor OBJIDs carry no population information
    cat = {k: v[order] for k, v in cat.items()}

    x = rng.uniform(3, size - 4, n)
    y = rng.uniform(3, size - 4, n)
    ra, dec = brick_wcs(brickname, size).all_pix2world(x, y, 0)
    ebv = np.full(n, cond["ebv"])
    is_gal = cat["re"] > 0
    q, _ = axis_ratio_angle(np.asarray(cat["e1"], np.float64), np.asarray(cat["e2"], np.float64))
    r_circ = cat["re"] * np.sqrt(q)
    cols: dict[str, np.ndarray] = {
        "RELEASE": np.full(n, RELEASE_DR10_SOUTH, dtype=np.int16),
        "BRICKID": np.full(n, mock_brickid(cfg, brickname), dtype=np.int32),
        "BRICKNAME": np.full(n, brickname),
        "OBJID": np.arange(n, dtype=np.int32),
        "TYPE": cat["type"].astype("U3"),
        "RA": np.mod(ra, 360.0),
        "DEC": dec,
        "EBV": ebv.astype(np.float32),
    }
    stripes = _stripes(rng, cfg)
    phot, true_flux = _photometry(rng, cat, cond, x, ebv, r_circ, _fiber_fraction(cat["sersic"], r_circ), stripes)
    cols.update(phot)
    cols.update(_gaia_and_masks(rng, cfg, x, y, is_gal, true_flux["r"]))
    cols.update({"SHAPE_R": cat["re"].astype(np.float32), "SHAPE_E1": cat["e1"].astype(np.float32),
                 "SHAPE_E2": cat["e2"].astype(np.float32), "SERSIC": cat["sersic"].astype(np.float32)})
    _add_pathologies(rng, cfg, cols, is_gal)
    cols["MOCK_POP"] = cat["pop"]
    fp_rng = _rngs(cfg, brickname, 6)[5]
    cols[MOCK_POPULATION_COLUMN] = assign_populations(fp_rng, cat["pop"] == "lrg", cfg.false_positives)
    features, extra = feature_light(fp_rng, cols[MOCK_POPULATION_COLUMN], x, y, cond["ebv"], cfg.false_positives)
    cols.update({f"MOCK_EXTRA_FLUX_{b.upper()}": extra[b].astype(np.float32) for b in BANDS})
    observed = np.logical_and.reduce([cols[f"NOBS_{b}"] > 0 for b in "GRZ"])
    cols["MOCK_Z_PHOT"] = np.where(observed, _photo_z(_rngs(cfg, brickname, 5)[4], cat), -99.0).astype(np.float32)
    for name, (dtype, _) in SWEEP_COLUMNS.items():
        cols[name] = np.asarray(cols[name]).astype(dtype)
    render = {"x": x, "y": y, "flux": true_flux, "re": cat["re"], "e1": cat["e1"], "e2": cat["e2"],
              "sersic": cat["sersic"]}
    render = {k: (np.concatenate([render[k], features[k]]) if k != "flux" else
                  {b: np.concatenate([true_flux[b], features["flux"][b]]) for b in BANDS}) for k in render}
    render.update({"cond": cond, "stripes": stripes, "n_catalogued": n})
    return cols, render


def _render_band(shape, render: dict, band: str) -> np.ndarray:
    """Noise-free image (nanomaggies/pixel) of every object in one band, (H, W) float64.

    Each object is rendered on its own (2h+1)^2 grid and normalised to its exact flux, then
    all objects are scattered into the image with one bincount (no per-pixel loops)."""
    ny, nx = shape
    c = render["cond"][band]
    x, y, flux = render["x"], render["y"], render["flux"][band]
    re_pix = render["re"] / PIXSCALE
    q, theta = axis_ratio_angle(np.asarray(render["e1"], np.float64), np.asarray(render["e2"], np.float64))
    shape_cov = covariance_pixels(re_pix, q, theta)
    half = np.clip(np.ceil(4 * c["sigma_psf_pix"] + 5 * re_pix), 8, 48).astype(int)
    half = np.where(half <= 12, 12, np.where(half <= 24, 24, 48))  # few distinct stamp sizes
    acc = np.zeros(ny * nx)
    for h in np.unique(half):
        for n_s in np.unique(render["sersic"][half == h]):
            sel = np.flatnonzero((half == h) & (render["sersic"] == n_s))
            offs = np.arange(-h, h + 1)
            xc = np.floor(x[sel] + 0.5).astype(int)
            yc = np.floor(y[sel] + 0.5).astype(int)
            # float32 for the (N, S, S) Gaussian sums, which are ~all of the mock sky's run
            # time: 2x faster than float64, and each stamp is renormalised to its exact flux
            dx = (xc[:, None] + offs[None, :] - x[sel, None]).astype(np.float32)[:, None, :]  # (N, 1, S)
            dy = (yc[:, None] + offs[None, :] - y[sel, None]).astype(np.float32)[:, :, None]  # (N, S, 1)
            dx2, dy2, dxy = dx**2, dy**2, dx * dy
            stamp = np.zeros((sel.size, offs.size, offs.size), np.float32)
            amps, var = sersic_mog(float(n_s))
            for a, v in zip(amps, var):
                for a_psf, v_psf in zip(c["psf_amps"], c["psf_var"]):  # galaxy x PSF components
                    cov = v * shape_cov[sel] + v_psf * np.eye(2)
                    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
                    ixx, iyy, ixy = ((-0.5 * k / det).astype(np.float32)[:, None, None]
                                     for k in (cov[:, 1, 1], cov[:, 0, 0], -2 * cov[:, 0, 1]))
                    norm = (a * a_psf / (2 * np.pi * np.sqrt(det))).astype(np.float32)[:, None, None]
                    stamp += norm * np.exp(ixx * dx2 + iyy * dy2 + ixy * dxy)
            stamp = stamp.astype(np.float64) * (flux[sel] / stamp.sum(axis=(1, 2), dtype=np.float64))[:, None, None]
            cols = np.broadcast_to(xc[:, None, None] + offs[None, None, :], stamp.shape)
            rows = np.broadcast_to(yc[:, None, None] + offs[None, :, None], stamp.shape)
            ok = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
            acc += np.bincount((rows[ok] * nx + cols[ok]), weights=stamp[ok], minlength=ny * nx)
    return acc.reshape(ny, nx)


def render_brick(cfg: MockSkyConfig, brickname: str, render: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rendered coadds of one brick: (image, invvar), each (3, H, W) float32 in
    nanomaggies and 1/nanomaggies^2; no-coverage stripes have image 0 and invvar 0."""
    noise_rng = _rngs(cfg, brickname, 4)[2]
    shape = (cfg.brick_size_pix, cfg.brick_size_pix)
    t = np.linspace(0.0, 2 * np.pi, cfg.brick_size_pix)
    images, invvars = [], []
    for b in BANDS:
        sigma = render["cond"][b]["sigma_pix"]
        # Depth varies smoothly by ~10% across a real brick (exposure overlaps). It also
        # matters for reproducibility: constant tiles would make fpack fall back to gzip,
        # whose header stores the wall-clock time.
        px, py = noise_rng.uniform(0, 2 * np.pi, 2)
        ivar = (1.0 + 0.05 * np.cos(t + px)[None, :] + 0.05 * np.cos(t + py)[:, None]) / sigma**2
        white = noise_rng.normal(0.0, 1.0, shape)
        img = _render_band(shape, render, b) + correlate(white, cfg.noise_lag1) / np.sqrt(ivar)
        if b in render["stripes"]:
            x0, x1 = render["stripes"][b]
            img[:, x0:x1] = 0.0
            ivar[:, x0:x1] = 0.0
        images.append(img.astype(np.float32))
        invvars.append(ivar.astype(np.float32))
    return np.stack(images), np.stack(invvars)


def _write_coadd(path: Path, data: np.ndarray, header: fits.Header, dither_seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # RICE_1 with fixed-seed subtractive dithering, like the DR10 fpacked coadds; a fixed
    # seed (not astropy's clock default) keeps reruns byte-identical.
    hdu = fits.CompImageHDU(data=data, header=header, compression_type="RICE_1",
                            quantize_level=16.0, dither_seed=dither_seed)
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)


def write_brick(cfg: MockSkyConfig, brickname: str, coadd_dir: str | Path, catalog_path: str | Path) -> dict:
    """Render one mock brick: write its 6 fpacked coadds under ``coadd_dir`` (DR10 layout)
    and its catalogue (sweep columns + MOCK_POP) to ``catalog_path`` (Parquet).
    Returns the brick's conditions."""
    cols, render = make_brick_catalog(cfg, brickname)
    image, invvar = render_brick(cfg, brickname, render)
    header = brick_wcs(brickname, cfg.brick_size_pix).to_header()
    header["BRICKNAM"] = brickname
    header["BUNIT"] = "nanomaggy"
    header["MOCKSKY"] = (True, "lensfinder mock DR10 sky")
    seed = zlib.crc32(f"{cfg.seed}-{brickname}".encode()) % 10000 + 1
    for i, b in enumerate(BANDS):
        h = header.copy()
        h["BAND"] = b
        h["PSFSIZE"] = (render["cond"][b]["psf_fwhm"], "PSF FWHM, arcsec")
        _write_coadd(coadd_path(coadd_dir, brickname, "image", b), image[i], h, seed + i)
        hv = h.copy()
        hv["BUNIT"] = "1/nanomaggy^2"
        _write_coadd(coadd_path(coadd_dir, brickname, "invvar", b), invvar[i], hv, seed + 10 + i)
    write_parquet(pa.table(cols), catalog_path)
    return render["cond"]


PHOTOZ_FILE_COLUMNS = {"RELEASE": "i2", "BRICKID": "i4", "OBJID": "i4", "Z_PHOT_MEAN": "f4",
                       "Z_PHOT_MEDIAN": "f4", "Z_PHOT_STD": "f4", "Z_SPEC": "f4"}
"""The columns of the DR10 photo-z sweeps the mock writes (a subset of the data model's)."""


def _values(table: pa.Table | None, name: str, dtype: str) -> np.ndarray:
    """Column ``name`` of ``table`` (no table: no rows) as numpy."""
    return table[name].to_numpy(zero_copy_only=False) if table is not None else np.zeros(0, dtype=dtype)


def _write_photoz(table: pa.Table | None, out_path: str | Path) -> None:
    """The photometric-redshift sweep row-matched to the sweep of ``table``, in the DR10
    ``-pz.fits`` layout (-99 where not computed; no spectra)."""
    z = _values(table, "MOCK_Z_PHOT", "f4")
    values = {k: _values(table, k, PHOTOZ_FILE_COLUMNS[k]) for k in ("RELEASE", "BRICKID", "OBJID")}
    values.update({"Z_PHOT_MEAN": z, "Z_PHOT_MEDIAN": z, "Z_PHOT_STD": np.where(z >= 0, 0.02 * (1 + z), -99.0),
                   "Z_SPEC": np.full(len(z), -99.0)})
    columns = [fits.Column(name=k, format=fits_format(dtype), array=np.asarray(values[k], dtype=dtype))
               for k, dtype in PHOTOZ_FILE_COLUMNS.items()]
    with atomic_path(out_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(tmp, overwrite=True)


def write_sweep(catalog_paths, out_path: str | Path, photoz_path: str | Path | None = None) -> int:
    """Concatenate brick catalogues into one DR10-format sweep FITS file (HDU 1 binary
    table with the spec's TFORMs and TUNITs, then the mock's truth column
    :data:`MOCK_POPULATION_COLUMN`) and, given ``photoz_path``, its row-matched photo-z
    sweep. Returns the number of rows."""
    tables = [pq.read_table(p) for p in catalog_paths]
    table = pa.concat_tables(tables) if tables else None
    columns = []
    for name, (dtype, unit) in SWEEP_COLUMNS.items():
        values = _values(table, name, dtype)
        if dtype.startswith("U"):
            values = np.char.encode(values.astype(dtype), "ascii")
        columns.append(fits.Column(name=name, format=fits_format(dtype), unit=unit or None,
                                   array=np.asarray(values)))
    # Truth column after the DR10 ones (real sweeps carry more columns than phase 3 reads):
    # which false-positive population each object is, so phase 3 can count them.
    population = _values(table, MOCK_POPULATION_COLUMN, "U16").astype("U16")
    columns.append(fits.Column(name=MOCK_POPULATION_COLUMN, format=fits_format("U16"),
                               array=np.char.encode(population, "ascii")))
    hdu = fits.BinTableHDU.from_columns(columns)
    hdu.header["SURVEY"] = "DECaLS DR10 (lensfinder mock)"
    with atomic_path(out_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
    if photoz_path is not None:
        _write_photoz(table, photoz_path)
    return 0 if table is None else table.num_rows
