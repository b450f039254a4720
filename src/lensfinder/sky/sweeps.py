"""Read DR10 sweep (or Tractor catalogue) FITS files into Arrow tables.

Sweep files are several GB on real data, so the reader memory-maps the binary table and
yields row chunks: the caller's peak memory is bounded by one chunk of the requested
columns, not by the file (and never by the sky).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
from astropy.io import fits

from lensfinder.sky.columns import SWEEP_COLUMNS, numpy_dtype


class SweepError(ValueError):
    """A sweep file that cannot be read as asked; the message names the file."""


def _check_blocks(path: Path) -> None:
    # A FITS file is a whole number of 2880-byte blocks; anything else was cut short
    # (astropy would silently drop a partial HDU and report a confusing structure error).
    if not path.exists():
        raise SweepError(f"{path}: sweep file not found")
    size = os.path.getsize(path)
    if size % 2880:
        raise SweepError(f"{path}: truncated: {size} bytes is not a whole number of 2880-byte FITS blocks; "
                         "re-copy the file")


def _table_hdu(path: Path, hdul: fits.HDUList) -> fits.BinTableHDU:
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
        raise SweepError(f"{path}: HDU 1 is not a binary table (is this a sweep/Tractor catalogue?)")
    hdu = hdul[1]
    header = hdu.header
    expected = hdu.fileinfo()["datLoc"] + header["NAXIS1"] * header["NAXIS2"] + header.get("PCOUNT", 0)
    actual = os.path.getsize(path)
    if actual < expected:
        raise SweepError(
            f"{path}: truncated: the header declares {header['NAXIS2']} rows of "
            f"{header['NAXIS1']} bytes ({expected} bytes to end of table) but the file has "
            f"{actual} bytes; re-copy the file"
        )
    return hdu


def _column_map(path: Path, hdu: fits.BinTableHDU, columns: Iterable[str]) -> dict[str, str]:
    # Sweeps use upper-case names, per-brick Tractor catalogues lower-case: match either.
    present = {name.upper(): name for name in hdu.columns.names}
    missing = [c for c in columns if c.upper() not in present]
    if missing:
        raise SweepError(f"{path}: missing column(s) {', '.join(missing)} (the file has {len(present)} columns)")
    return {c: present[c.upper()] for c in columns}


def _check_types(path: Path, hdu: fits.BinTableHDU, colmap: dict[str, str]) -> None:
    """A column the DR10 spec makes numeric must be numeric on disk (a string-typed flux
    would otherwise flow on as text and fail far from its cause)."""
    for col, fits_name in colmap.items():
        if col not in SWEEP_COLUMNS:
            continue
        want = numpy_dtype(col).kind
        have = hdu.columns.dtype.fields[fits_name][0].base.kind
        if want in "iufb" and have in "SU":
            raise SweepError(f"{path}: column {col} is stored as text (FITS format {hdu.columns[fits_name].format}); "
                             f"DR10 stores it as {numpy_dtype(col)}")


def _normalise(name: str, values: np.ndarray) -> pa.Array:
    dtype = numpy_dtype(name) if name in SWEEP_COLUMNS else None
    if (dtype is not None and dtype.kind == "U") or values.dtype.kind in "SU":
        if values.dtype.kind == "S":
            values = np.char.decode(values, "ascii")
        return pa.array(np.char.strip(values.astype(str)), type=pa.string())
    if dtype is not None:
        values = values.astype(dtype, copy=False)
    # FITS is big-endian; Arrow wants native byte order.
    return pa.array(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("=")))


def sweep_num_rows(path: str | os.PathLike) -> int:
    """Number of rows of a sweep file (reads the header only)."""
    path = Path(path)
    _check_blocks(path)
    try:
        with fits.open(path, memmap=True) as hdul:
            return int(_table_hdu(path, hdul).header["NAXIS2"])
    except SweepError:
        raise
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise SweepError(f"{path}: not a readable FITS sweep file ({exc})") from exc


def has_column(path: str | os.PathLike, name: str) -> bool:
    """Whether the sweep file ``path`` has a column ``name`` (any case; reads the header)."""
    path = Path(path)
    _check_blocks(path)
    try:
        with fits.open(path, memmap=True) as hdul:
            return name.upper() in {c.upper() for c in _table_hdu(path, hdul).columns.names}
    except SweepError:
        raise
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise SweepError(f"{path}: not a readable FITS sweep file ({exc})") from exc


def _disk_dtype(path: Path, hdu: fits.BinTableHDU) -> np.dtype:
    """The binary table's on-disk record dtype (FITS is big-endian)."""
    fields = []
    for name in hdu.columns.dtype.names:
        dt = hdu.columns.dtype.fields[name][0]
        base = dt.base.newbyteorder(">") if dt.base.kind in "iuf" and dt.base.itemsize > 1 else dt.base
        fields.append((name, base, dt.shape) if dt.shape else (name, base))
    disk = np.dtype(fields)
    if disk.itemsize != hdu.header["NAXIS1"]:
        raise SweepError(f"{path}: unsupported table layout (row of {hdu.header['NAXIS1']} bytes, "
                         f"columns add up to {disk.itemsize}; variable-length columns are not supported)")
    return disk


def _decode(hdu: fits.BinTableHDU, fits_name: str, raw: np.ndarray) -> np.ndarray:
    col = hdu.columns[fits_name]
    if col.format.upper().endswith("L"):
        return raw == ord("T")
    if col.bscale not in (None, 1) or col.bzero not in (None, 0):
        return raw * (col.bscale if col.bscale is not None else 1) + (col.bzero or 0)
    return raw


def iter_sweep(
    path: str | os.PathLike, columns: Iterable[str] | None = None, chunk_rows: int = 100_000
) -> Iterator[pa.Table]:
    """Yield ``pa.Table`` chunks of at most ``chunk_rows`` rows of a sweep file.

    ``columns`` (default: every column in :data:`~lensfinder.sky.columns.SWEEP_COLUMNS`)
    are returned upper-case, with the dtypes of the column spec (strings stripped).
    Raises :class:`SweepError` naming the file for a missing column, a truncated file or a
    file that is not a FITS binary table.

    Rows are read with plain file I/O, one chunk at a time, into the on-disk record dtype:
    peak memory is one chunk of whole rows (~chunk_rows x 1-2 kB on real sweeps),
    independent of the file size. (astropy's memory-mapped FITS_rec caches converted
    whole columns, and touched map pages count towards the job's RSS, so it is not used
    for the data.)
    """
    path = Path(path)
    columns = list(columns) if columns is not None else list(SWEEP_COLUMNS)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    _check_blocks(path)
    try:
        hdul = fits.open(path, memmap=True)
    except (OSError, ValueError) as exc:
        raise SweepError(f"{path}: not a readable FITS sweep file ({exc})") from exc
    with hdul:
        try:  # astropy parses HDU headers lazily: a header cut short fails here
            hdu = _table_hdu(path, hdul)
            n = int(hdu.header["NAXIS2"])
            offset = hdu.fileinfo()["datLoc"]
        except SweepError:
            raise
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise SweepError(f"{path}: not a readable FITS sweep file ({exc})") from exc
        colmap = _column_map(path, hdu, columns)
        _check_types(path, hdu, colmap)
        disk = _disk_dtype(path, hdu)
        with open(path, "rb") as fh:
            fh.seek(offset)
            for start in range(0, max(n, 1), chunk_rows):
                count = min(chunk_rows, n - start)
                rows = np.fromfile(fh, dtype=disk, count=count)
                if rows.size != count:
                    raise SweepError(f"{path}: truncated: rows {start}-{start + count} could not be read")
                arrays = [_normalise(c, _decode(hdu, colmap[c], rows[colmap[c]])) for c in columns]
                yield pa.Table.from_arrays(arrays, names=columns)
                del rows, arrays


def read_sweep(path: str | os.PathLike, columns: Iterable[str] | None = None) -> pa.Table:
    """Whole sweep file as one ``pa.Table`` (see :func:`iter_sweep`; small files only)."""
    return pa.concat_tables(list(iter_sweep(path, columns)))
