"""lensfinder: strong-lens finding in DESI Legacy Imaging Surveys DR10 (DECaLS).

Modules in data-flow order (a module imports only earlier ones):

    tables        atomic Parquet / JSON writing (the data contracts' I/O)
    photometry    nanomaggies <-> AB mag, depths, Galactic extinction
    sky.columns   the DR10 sweep (Tractor) column spec: names, dtypes, units
    sky.bricks    brick names, brick geometry, coadd and sweep file names
    sky.mock      the built-in mock DR10 sky: writes sweeps + coadd bricks in DR10 formats
    sky.sweeps    sweep FITS -> Arrow reader
    sky.coadds    64x64 grz cutouts from local coadd bricks (FITS WCS)
    sky.cutout_service  cached, rate-limited client for the public cutout service
    select        phase 3: DESI LRG selection (DECaLS) -> parent_lrg.parquet
"""

__version__ = "0.1.0"

BANDS = ("g", "r", "z")
"""Optical bands of every stamp, in channel order."""

PIXSCALE = 0.262
"""DECam Legacy Surveys coadd pixel scale, arcsec per pixel."""

STAMP_SIZE = 64
"""Stamp side length, pixels."""
