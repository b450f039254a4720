"""One sky cross-match, used by the known-lens veto of phase 4a and by the candidates:
nearest catalogued lens within a radius, with astropy's ``match_to_catalog_sky``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

# A galaxy within 5" of a catalogued lens is that lens (lens-search cross-matches use
# 2-5"; a DR10 LRG's Einstein radius is ~1-3"), both for the veto and for recovery.
MATCH_RADIUS_ARCSEC = 5.0


def nearest_within(ra, dec, catalogue: pd.DataFrame, radius_arcsec: float = MATCH_RADIUS_ARCSEC):
    """(index into ``catalogue`` or -1, separation in arcsec or NaN) of the nearest entry
    within ``radius_arcsec`` of each position. ``ra``, ``dec`` (N,) degrees; the catalogue
    has ``ra``, ``dec`` columns in degrees."""
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    if len(catalogue) == 0 or len(ra) == 0:
        return np.full(len(ra), -1), np.full(len(ra), np.nan)
    gal = SkyCoord(ra * u.deg, dec * u.deg)
    cat = SkyCoord(catalogue["ra"].to_numpy() * u.deg, catalogue["dec"].to_numpy() * u.deg)
    idx, sep, _ = gal.match_to_catalog_sky(cat)
    hit = sep.arcsec < radius_arcsec
    return np.where(hit, idx, -1), np.where(hit, sep.arcsec, np.nan)
