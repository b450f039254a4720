"""Legacy Surveys brick and sweep geometry and file naming.

DR10 coadds live at ``coadd/<bri>/<brick>/legacysurvey-<brick>-<image|invvar>-<band>.fits.fz``
(``<bri>`` is the first three characters of the brick name) with a TAN WCS at 0.262"/pix.
Sweeps cover 5x5 degree boxes named ``sweep-<ramin><p|m><decmin>-<ramax><p|m><decmax>.fits``.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from lensfinder import PIXSCALE

BRICKNAME_RE = re.compile(r"^(\d{4})([pm])(\d{3})$")
SWEEP_RE = re.compile(r"^sweep-(\d{3})([pm])(\d{3})-(\d{3})([pm])(\d{3})\.fits$")
SWEEP_BOX_DEG = 5


# The Legacy Surveys brick grid (survey-bricks.fits; desiutil.brick.Bricks(0.25) computes
# the same tiling): rows of 0.25 deg in Dec centred on multiples of 0.25 deg; each row is
# cut into an even number of equal RA bricks no wider than 0.25 deg at the row edge nearer
# the equator; one brick at each pole. Written out here (a dozen lines) so the package does
# not depend on desiutil at run time; tests/test_bricks.py checks it against desiutil.
BRICK_SIZE_DEG = 0.25


def _row_dec(row: int) -> float:
    return min(90.0, -90.0 + row * BRICK_SIZE_DEG)


@lru_cache(maxsize=None)
def _row_bricks(row: int) -> tuple[np.ndarray, list[str]]:
    """(RA centres, brick names) of one Dec row of the grid."""
    dec = _row_dec(row)
    if abs(dec) == 90.0:
        ra = np.array([180.0])
    else:
        declo = max(0.0, abs(dec) - BRICK_SIZE_DEG / 2)
        ncol = int(np.ceil(360 / BRICK_SIZE_DEG * np.cos(np.deg2rad(declo)) / 2) * 2)
        edges = np.linspace(0, 360, ncol + 1)
        ra = 0.5 * (edges[:-1] + edges[1:])
    # names as survey-bricks spells them: RA and |Dec| x 10 truncated (via x 10000, so that
    # 39.599999999999994 reads as 0396)
    sign = "p" if dec >= 0 else "m"
    dec_tok = f"{abs(dec) * 10000:06.0f}"[:3]
    return ra, [f"{r * 10000:07.0f}"[:4] + sign + dec_tok for r in ra]


def _rows_named(dec_token: str, sign: str) -> list[int]:
    tenths = int(dec_token) * (1 if sign == "p" else -1)
    centre = tenths / 10.0
    near = round((centre + 90) / BRICK_SIZE_DEG)
    return [r for r in (near - 1, near, near + 1) if 0 <= r <= 720 and _row_bricks(r)[1][0][4:] == sign + dec_token]


def brick_center(brickname: str) -> tuple[float, float]:
    """(ra, dec) in degrees of a brick of the Legacy Surveys grid (``1503p022`` ->
    (150.375, 2.25)). A name that is not on the grid is a ValueError."""
    m = BRICKNAME_RE.match(brickname)
    if not m:
        raise ValueError(f"not a Legacy Surveys brick name: {brickname!r}")
    for row in _rows_named(m.group(3), m.group(2)):
        ra, names = _row_bricks(row)
        if brickname in names:
            return float(ra[names.index(brickname)]), _row_dec(row)
    raise ValueError(f"{brickname!r} is not a brick of the Legacy Surveys grid (0.25 deg rows; e.g. "
                     f"{brickname_at(int(m.group(1)) / 10 + 0.05, int(m.group(3)) / 10 * (1 if m.group(2) == 'p' else -1))!r} "
                     "is one nearby)")


def brickname_at(ra: float, dec: float) -> str:
    """Name of the grid brick containing (ra, dec) in degrees."""
    row = int(np.clip(np.floor((dec + 90 + BRICK_SIZE_DEG / 2) / BRICK_SIZE_DEG), 0, 720))
    centres, names = _row_bricks(row)
    return names[min(int((ra % 360) / 360 * len(centres)), len(centres) - 1)]


def bricks_in_box(ra: tuple[float, float], dec: tuple[float, float]) -> list[str]:
    """Names of the grid bricks whose centres lie in ra[0] <= RA < ra[1], dec[0] <= Dec <
    dec[1] (degrees; no wrap at RA 0), in Dec rows from south to north, RA ascending."""
    first = int(np.ceil((dec[0] + 90) / BRICK_SIZE_DEG))
    names = []
    for row in range(max(first, 0), 721):
        if _row_dec(row) >= dec[1]:
            break
        centres, row_names = _row_bricks(row)
        names += [n for c, n in zip(centres, row_names) if ra[0] <= c < ra[1]]
    return names


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
