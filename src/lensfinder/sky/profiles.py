"""Light profiles and observing conditions of the mock sky.

Galaxy profiles are Gaussian mixtures fitted to Sersic profiles (the same approach as the
Tractor, Hogg & Lang 2013), which makes PSF convolution analytic and the rendering
vectorised; PSFs are mixtures of the family the injected arcs are blurred with
(:mod:`lensfinder.psf`). This is for the mock only: phase 4c ray-traces exact Sersic sources.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.optimize import nnls
from scipy.special import gammaincinv

from lensfinder import BANDS, PIXSCALE
from lensfinder.photometry import FWHM_PER_SIGMA, depth_mag_to_ivar
from lensfinder.psf import PsfConfig, moffat_alpha, moffat_mixture
from lensfinder.sky.mock_config import MockSkyConfig, brick_rngs

FIBER_RADIUS_ARCSEC = 0.75
FIBER_SEEING_FWHM_ARCSEC = 1.0


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


def fiber_fraction(n, r_circ_arcsec) -> np.ndarray:
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


def psf_mixture(cfg: PsfConfig, fwhm_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """The mock's PSF of FWHM ``fwhm_arcsec`` as circular Gaussians: (weights, variances in
    pixels^2). Moffat: :func:`lensfinder.psf.moffat_mixture` scaled to alpha."""
    if cfg.kind == "gaussian":
        return np.array([1.0]), np.array([(fwhm_arcsec / FWHM_PER_SIGMA / PIXSCALE) ** 2])
    amps, var = moffat_mixture(cfg.moffat_beta)
    return amps / amps.sum(), var * (moffat_alpha(fwhm_arcsec, cfg.moffat_beta) / PIXSCALE) ** 2


def brick_conditions(cfg: MockSkyConfig, brickname: str) -> dict:
    """Observing conditions of one mock brick: per band PSF FWHM (arcsec), 5-sigma PSF
    depth (AB mag), PSFDEPTH (1/nanomaggies^2), pixel noise sigma (nanomaggies), and EBV."""
    rng = brick_rngs(cfg, brickname, 4)[0]
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
