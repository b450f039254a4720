"""The DR10 sweep (Tractor) columns this pipeline reads and the mock sky writes.

Names, FITS dtypes and units follow the DR10 catalogue description
(legacysurvey.org/dr10/catalogs). The reader normalises every column to the dtype given
here, so a DR9-style file that stores e.g. MASKBITS as int16 reads the same as DR10.
"""

from __future__ import annotations

import numpy as np

OPTICAL = ("g", "r", "z")
WISE = ("w1", "w2")

NANOMAGGIES = "nanomaggy"
IVAR_FLUX = "1/nanomaggy^2"

MOCK_POPULATION_COLUMN = "MOCK_POPULATION"
"""Truth column of the mock's sweeps (not in DR10): the false-positive population of each
object (:mod:`lensfinder.sky.false_positives`)."""

# name -> (numpy dtype, FITS unit or "")
SWEEP_COLUMNS: dict[str, tuple[str, str]] = {
    "RELEASE": ("i2", ""),
    "BRICKID": ("i4", ""),
    "BRICKNAME": ("U8", ""),
    "OBJID": ("i4", ""),
    "TYPE": ("U3", ""),
    "RA": ("f8", "deg"),
    "DEC": ("f8", "deg"),
    "EBV": ("f4", "mag"),
}
for _b in OPTICAL + WISE:
    B = _b.upper()
    SWEEP_COLUMNS[f"FLUX_{B}"] = ("f4", NANOMAGGIES)
    SWEEP_COLUMNS[f"FLUX_IVAR_{B}"] = ("f4", IVAR_FLUX)
    SWEEP_COLUMNS[f"MW_TRANSMISSION_{B}"] = ("f4", "")
for _b in OPTICAL:
    B = _b.upper()
    SWEEP_COLUMNS[f"NOBS_{B}"] = ("i2", "")
    SWEEP_COLUMNS[f"FIBERFLUX_{B}"] = ("f4", NANOMAGGIES)
    SWEEP_COLUMNS[f"FIBERTOTFLUX_{B}"] = ("f4", NANOMAGGIES)
    SWEEP_COLUMNS[f"PSFSIZE_{B}"] = ("f4", "arcsec")
    SWEEP_COLUMNS[f"PSFDEPTH_{B}"] = ("f4", IVAR_FLUX)
    SWEEP_COLUMNS[f"GALDEPTH_{B}"] = ("f4", IVAR_FLUX)
SWEEP_COLUMNS.update(
    {
        "MASKBITS": ("i4", ""),
        "SHAPE_R": ("f4", "arcsec"),
        "SHAPE_E1": ("f4", ""),
        "SHAPE_E2": ("f4", ""),
        "SERSIC": ("f4", ""),
        "GAIA_PHOT_G_MEAN_MAG": ("f4", "mag"),
        "REF_CAT": ("U2", ""),
    }
)
del _b, B

MASKBITS = {
    "NPRIMARY": 0,
    "BRIGHT": 1,
    "SATUR_G": 2,
    "SATUR_R": 3,
    "SATUR_Z": 4,
    "ALLMASK_G": 5,
    "ALLMASK_R": 6,
    "ALLMASK_Z": 7,
    "WISEM1": 8,
    "WISEM2": 9,
    "BAILOUT": 10,
    "MEDIUM": 11,
    "GALAXY": 12,
    "CLUSTER": 13,
}
"""Legacy Surveys MASKBITS bit numbers (legacysurvey.org/dr10/bitmasks)."""

TRACTOR_TYPES = ("PSF", "REX", "DEV", "EXP", "SER", "DUP")


def fits_format(dtype: str) -> str:
    """FITS binary-table TFORM for a numpy dtype string of :data:`SWEEP_COLUMNS`."""
    if dtype.startswith("U"):
        return f"{int(dtype[1:])}A"
    return {"i2": "I", "i4": "J", "i8": "K", "f4": "E", "f8": "D", "u1": "B"}[dtype]


def numpy_dtype(name: str) -> np.dtype:
    """Normalised numpy dtype of sweep column ``name``."""
    return np.dtype(SWEEP_COLUMNS[name][0])
