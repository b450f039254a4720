"""Photometric conversions for Legacy Surveys catalogues.

Fluxes are in nanomaggies (AB zero point 22.5): ``m = 22.5 - 2.5 log10(flux)``.
"""

from __future__ import annotations

import numpy as np

ZERO_POINT = 22.5

EXTINCTION_COEFF = {"g": 3.214, "r": 2.165, "z": 1.211, "w1": 0.184, "w2": 0.113}
"""A_band / E(B-V) for DECam grz and WISE W1/W2, as used by the Legacy Surveys DR9/DR10
to compute ``MW_TRANSMISSION_<band> = 10**(-0.4 * coeff * EBV)``."""

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def flux_to_mag(flux, floor: float | None = None):
    """AB magnitude of ``flux`` (nanomaggies); non-positive fluxes give NaN unless ``floor``
    (nanomaggies) is given, in which case fluxes are clipped to it first."""
    flux = np.asarray(flux)
    if floor is not None:
        flux = np.clip(flux, floor, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = ZERO_POINT - 2.5 * np.log10(flux)
    return np.where(flux > 0, mag, np.nan) if floor is None else mag


def mag_to_flux(mag):
    """Flux in nanomaggies of AB magnitude ``mag``."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - ZERO_POINT))


def mw_transmission(ebv, band: str):
    """Milky Way transmission (0-1) in ``band`` for reddening ``ebv`` (mag)."""
    return 10.0 ** (-0.4 * EXTINCTION_COEFF[band] * np.asarray(ebv, dtype=np.float64))


def depth_mag_to_ivar(depth_mag, nsigma: float = 5.0):
    """Inverse variance (1/nanomaggies^2) of a flux whose ``nsigma`` detection limit is
    ``depth_mag`` (AB). Inverse of :func:`ivar_to_depth_mag`."""
    sigma = mag_to_flux(depth_mag) / nsigma
    return 1.0 / sigma**2


def ivar_to_depth_mag(ivar, nsigma: float = 5.0):
    """``nsigma`` depth (AB mag) of a flux measured with inverse variance ``ivar``
    (1/nanomaggies^2): ``22.5 - 2.5 log10(nsigma / sqrt(ivar))``. This is how PSFDEPTH
    and GALDEPTH convert to 5-sigma depths."""
    ivar = np.asarray(ivar, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ivar > 0, ZERO_POINT - 2.5 * np.log10(nsigma / np.sqrt(ivar)), np.nan)
