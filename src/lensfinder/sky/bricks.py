"""Legacy Surveys brick and sweep geometry and file naming.

DR10 coadds live at ``coadd/<bri>/<brick>/legacysurvey-<brick>-<image|invvar>-<band>.fits.fz``
(``<bri>`` is the first three characters of the brick name) with a TAN WCS at 0.262"/pix.
Sweeps cover 5x5 degree boxes named ``sweep-<ramin><p|m><decmin>-<ramax><p|m><decmax>.fits``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from lensfinder import PIXSCALE

BRICKNAME_RE = re.compile(r"^(\d{4})([pm])(\d{3})$")
SWEEP_RE = re.compile(r"^sweep-(\d{3})([pm])(\d{3})-(\d{3})([pm])(\d{3})\.fits$")
SWEEP_BOX_DEG = 5


def brick_center(brickname: str) -> tuple[float, float]:
    """(ra, dec) in degrees encoded in a brick name such as ``1501p022``."""
    m = BRICKNAME_RE.match(brickname)
    if not m:
        raise ValueError(f"not a Legacy Surveys brick name: {brickname!r}")
    ra = int(m.group(1)) / 10.0
    dec = int(m.group(3)) / 10.0 * (1 if m.group(2) == "p" else -1)
    return ra, dec


def brickname_at(ra: float, dec: float) -> str:
    """Brick-style name for a position (the encoding of :func:`brick_center`)."""
    sign = "p" if dec >= 0 else "m"
    return f"{int(math.floor(ra * 10 + 1e-9)) % 3600:04d}{sign}{int(math.floor(abs(dec) * 10 + 1e-9)):03d}"


def coadd_path(coadd_dir: str | Path, brickname: str, kind: str, band: str) -> Path:
    """Path of a DR10 coadd file; ``kind`` is ``image`` or ``invvar``."""
    if kind not in ("image", "invvar"):
        raise ValueError(f"coadd kind must be image or invvar, not {kind!r}")
    return Path(coadd_dir) / brickname[:3] / brickname / f"legacysurvey-{brickname}-{kind}-{band}.fits.fz"


def _radec_token(ra: int, dec: int) -> str:
    return f"{ra:03d}{'p' if dec >= 0 else 'm'}{abs(dec):03d}"


def sweep_name(ra: float, dec: float) -> str:
    """Name of the 5x5 degree sweep file that contains (ra, dec) (file name only)."""
    ra0 = int(math.floor(ra / SWEEP_BOX_DEG)) * SWEEP_BOX_DEG
    dec0 = int(math.floor(dec / SWEEP_BOX_DEG)) * SWEEP_BOX_DEG
    return f"sweep-{_radec_token(ra0, dec0)}-{_radec_token(ra0 + SWEEP_BOX_DEG, dec0 + SWEEP_BOX_DEG)}.fits"


def sweep_box(name: str) -> tuple[float, float, float, float]:
    """(ramin, ramax, decmin, decmax) in degrees of a sweep file name."""
    m = SWEEP_RE.match(Path(name).name)
    if not m:
        raise ValueError(f"not a DR10 sweep file name: {name!r}")
    ra0, s0, d0, ra1, s1, d1 = m.groups()
    dec0 = int(d0) * (1 if s0 == "p" else -1)
    dec1 = int(d1) * (1 if s1 == "p" else -1)
    return float(ra0), float(ra1), float(dec0), float(dec1)


def brick_wcs(brickname: str, size_pix: int, pixscale: float = PIXSCALE) -> WCS:
    """TAN WCS of a square brick of ``size_pix`` pixels centred on the brick centre,
    north up, east left, as in the DR10 coadds."""
    ra, dec = brick_center(brickname)
    header = fits.Header()
    header["NAXIS"] = 2
    header["NAXIS1"] = size_pix
    header["NAXIS2"] = size_pix
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    header["CRVAL1"] = ra
    header["CRVAL2"] = dec
    header["CRPIX1"] = (size_pix + 1) / 2.0
    header["CRPIX2"] = (size_pix + 1) / 2.0
    header["CD1_1"] = -pixscale / 3600.0
    header["CD1_2"] = 0.0
    header["CD2_1"] = 0.0
    header["CD2_2"] = pixscale / 3600.0
    return WCS(header)


def angular_separation_arcsec(ra1, dec1, ra2, dec2):
    """Great-circle separation in arcsec (haversine; inputs in degrees, broadcastable)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    s = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(s, 0, 1)))) * 3600.0
