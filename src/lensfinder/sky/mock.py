"""The built-in mock DR10 sky, written in exactly the raw DR10 formats the real-data readers
consume -- sweep FITS files with the Tractor columns of :mod:`lensfinder.sky.columns`, their
row-matched photo-z sweeps, and fpacked coadd bricks (image + invvar per band, TAN WCS at
0.262"/pix, 3600 x 3600 like DR10's) -- from a seeded generator, so the default pipeline run
exercises the real-data code path.

Read in data-flow order: :mod:`~lensfinder.sky.mock_config` (settings and seeded streams),
:mod:`~lensfinder.sky.counts` and :mod:`~lensfinder.sky.lrg_model` (what the sky holds),
:mod:`~lensfinder.sky.scene` (one brick's objects and catalogue),
:mod:`~lensfinder.sky.render` (its pixels), then this module (the files). The truth columns
``MOCK_POPULATION`` and ``MOCK_EXTRA_FLUX_<B>`` name each look-alike and its uncatalogued flux.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits

from lensfinder import BANDS
from lensfinder.sky.bricks import brick_wcs, coadd_path
from lensfinder.sky.columns import MOCK_POPULATION_COLUMN, SWEEP_COLUMNS, fits_format
from lensfinder.sky.mock_config import MockSkyConfig, bricks_in_sweep, sweep_names  # noqa: F401 (re-exported)
from lensfinder.sky.profiles import psf_mixture, sersic_mog  # noqa: F401 (re-exported)
from lensfinder.sky.render import _render_band, render_brick  # noqa: F401 (_render_band re-exported)
from lensfinder.sky.scene import make_brick_catalog
from lensfinder.tables import atomic_path, write_parquet

__all__ = ["MockSkyConfig", "bricks_in_sweep", "sweep_names", "make_brick_catalog", "write_brick", "write_sweep"]


@contextmanager
def _deterministic_gzip():
    """astropy stores tiles that cannot be quantised (the empty sky outside the windows is
    constant) with Python's gzip, whose header holds the wall-clock time: fix it at 0, and
    use level 1 (those tiles are zeros), so reruns are byte-identical. The determinism test
    in tests/test_mock.py fails if astropy moves this hook."""
    from astropy.io.fits.hdu.compressed import _codecs
    saved = _codecs.gzip_compress
    _codecs.gzip_compress = functools.partial(gzip.compress, compresslevel=1, mtime=0)
    try:
        yield
    finally:
        _codecs.gzip_compress = saved


def _write_coadd(path: Path, data: np.ndarray, header: fits.Header, dither_seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # RICE_1 in 360 x 360 tiles (DR10: 100 x 100; 13x fewer tiles write 1.5x faster) with fixed-seed subtractive dithering, like the DR10
    # fpacked coadds; a fixed seed (not astropy's clock default) keeps reruns byte-identical.
    hdu = fits.CompImageHDU(data=data, header=header, compression_type="RICE_1", tile_shape=(360, 360),
                            quantize_level=16.0, dither_seed=dither_seed)
    with atomic_path(path) as tmp, _deterministic_gzip():
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
