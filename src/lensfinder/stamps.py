"""Phase-4c stamp files: sharded Parquet, one row per stamp.

Columns: the manifest's, plus ``stamp`` -- the 3x64x64 float32 g,r,z image in nanomaggies,
raw little-endian C-order bytes in a fixed-size binary column (uncompressed by default, see
:func:`writer_options`)
-- optionally the legacy gen2 ``stamp_npz`` column (one ``np.savez_compressed`` archive
per row), and the injection diagnostics.

Decoding a row group is zero-copy: the fixed-size column's data buffer *is* the
(N, 3, 64, 64) array, so no per-row Python work happens on the training hot path.
"""

from __future__ import annotations

import io
import os
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder import STAMP_SIZE

N_BANDS = 3
STAMP_SHAPE = (N_BANDS, STAMP_SIZE, STAMP_SIZE)
STAMP_BYTES = int(np.prod(STAMP_SHAPE)) * 4
STAMP_TYPE = pa.binary(STAMP_BYTES)
ROW_GROUP_ROWS = 1024  # ~50 MB of raw stamps per row group: streamable, yet large reads


STAMP_CODECS = ("none", "zstd", "lz4", "snappy", "gzip")  # Parquet codecs pyarrow writes everywhere


def writer_options(schema: pa.Schema, stamp_compression: str = "none") -> dict:
    """Parquet writer options for a stamp file: every column zstd and dictionary-encoded
    except ``stamp``, which is stored with ``stamp_compression`` and no dictionary. Sky-noise
    dominated float32 stamps barely compress (zstd saves ~7% on DR10-like stamps) while zstd
    decoding costs ~4.5x in read throughput (benchmarks/stamp_decode.py), and training reads
    every stamp every epoch."""
    names = schema.names
    # Page CRCs: an uncompressed stamp page that rots on disk would otherwise decode as
    # finite garbage (up to ~3e38) and train silently; readers verify them (open_stamps).
    return {"compression": {n: (stamp_compression if n == "stamp" else "zstd") for n in names},
            "use_dictionary": [n for n in names if n not in ("stamp", "stamp_npz")],
            "write_page_checksum": True}

DIAGNOSTIC_FIELDS = [
    pa.field("arc_flux_g", pa.float32()), pa.field("arc_flux_r", pa.float32()), pa.field("arc_flux_z", pa.float32()),
    pa.field("magnification", pa.float32()), pa.field("mu_total", pa.float32()), pa.field("arc_snr", pa.float32()),
    pa.field("arc_max_pixel", pa.float32()), pa.field("lens_x_pix", pa.float32()), pa.field("lens_y_pix", pa.float32()),
    pa.field("n_images", pa.int8()), pa.field("image_magnifications", pa.list_(pa.float32())),
    pa.field("resolved", pa.bool_()), pa.field("draw_attempt", pa.int16()),
]
"""Per-positive injection diagnostics (NaN, -1 or null for controls). arc_flux_<b>: noiseless
arc flux on the stamp after the PSF, nanomaggies; magnification: that flux / the unlensed
source flux; mu_total: total magnification of the extended source (all its light, on or off
the stamp); arc_snr: S/N of the arc in its own pixels (:func:`lensfinder.detectability.arc_snr`);
arc_max_pixel: brightest arc pixel, nanomaggies; lens_x/y_pix: lens centre in the stamp
(0-based pixels); n_images, image_magnifications: the images of the source centre and their
signed point magnifications (lens equation solved); resolved: Collett (2015)'s resolution
criterion; draw_attempt: which draw of the lens and source was kept (0: the manifest's)."""


class StampFormatError(ValueError):
    """A stamp file or row that does not hold what the format promises; names file/row."""


def open_stamps(path: str | os.PathLike) -> pq.ParquetFile:
    """A stamp file opened for reading with page checksums verified; a file that is not
    Parquet is a :class:`StampFormatError` naming it."""
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise StampFormatError(f"{path}: not a readable Parquet stamp file ({exc})") from exc


def read_row_group(pf: pq.ParquetFile, path, index: int, columns: list[str] | None = None) -> pa.Table:
    """Row group ``index`` of an :func:`open_stamps` file; a page failing its checksum (or
    otherwise unreadable) is a :class:`StampFormatError` naming the file and row group."""
    try:
        return pf.read_row_group(index, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise StampFormatError(f"{path}: row group {index}: corrupted or unreadable ({exc})") from exc


def read_columns(paths, columns: list[str]) -> pa.Table:
    """``columns`` (no pixels) of every row of the stamp files ``paths``, read row group by
    row group with checksums verified (:func:`read_row_group`)."""
    parts = [read_row_group(pf, p, i, columns) for p in paths for pf in [open_stamps(p)]
             for i in range(pf.num_row_groups)]
    return pa.concat_tables(parts) if parts else pa.table({c: pa.array([]) for c in columns})


def stamp_schema(manifest_schema: pa.Schema, with_npz: bool) -> pa.Schema:
    fields = list(manifest_schema) + [pa.field("stamp", STAMP_TYPE)]
    if with_npz:
        fields.append(pa.field("stamp_npz", pa.binary()))
    # cutout_resampled: the pixels came from the cutout service (Lanczos-3 resampled onto a
    # grid centred on the target), not from native coadd pixels
    return pa.schema(fields + DIAGNOSTIC_FIELDS + [pa.field("cutout_resampled", pa.bool_())])


def encode_stamps(stamps: np.ndarray) -> pa.FixedSizeBinaryArray:
    """(N, 3, 64, 64) float32 -> fixed-size binary column (one copy, no per-row work)."""
    stamps = np.ascontiguousarray(stamps, dtype="<f4")
    if stamps.shape[1:] != STAMP_SHAPE:
        raise StampFormatError(f"stamps must be (N, {STAMP_SHAPE}), got {stamps.shape}")
    return pa.FixedSizeBinaryArray.from_buffers(STAMP_TYPE, len(stamps), [None, pa.py_buffer(stamps.tobytes())])


def decode_stamps(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fixed-size ``stamp`` column -> (N, 3, 64, 64) float32. Zero-copy for one chunk
    (the result is a read-only view of the Arrow buffer)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            column = column.chunk(0)
        else:
            return np.concatenate([decode_stamps(c) for c in column.chunks]) if column.num_chunks else \
                np.empty((0,) + STAMP_SHAPE, np.float32)
    if column.type != STAMP_TYPE:
        raise StampFormatError(f"stamp column has type {column.type}, expected {STAMP_TYPE}")
    if column.null_count:
        raise StampFormatError(f"stamp column has {column.null_count} null rows")
    buf = column.buffers()[1]
    arr = np.frombuffer(buf, dtype="<f4", count=len(column) * STAMP_BYTES // 4, offset=column.offset * STAMP_BYTES)
    return arr.reshape((len(column),) + STAMP_SHAPE)


def encode_npz(stamps: np.ndarray) -> pa.BinaryArray:
    """Legacy gen2 ``stamp_npz``: one ``np.savez_compressed(stamp=...)`` archive per row.
    (Inherently one Python call per row: that cost is why ``stamp`` exists.)"""
    out = []
    for s in stamps:
        buf = io.BytesIO()
        np.savez_compressed(buf, stamp=np.asarray(s, dtype=np.float32))
        out.append(buf.getvalue())
    return pa.array(out, type=pa.binary())


def decode_npz(column, where: str = "stamp_npz") -> np.ndarray:
    """Legacy ``stamp_npz`` column -> (N, 3, 64, 64) float32. Accepts one (3, 64, 64) array
    per archive (any key) or per-band arrays keyed g/r/z (or image_g, ...)."""
    values = column.to_pylist()
    out = np.empty((len(values),) + STAMP_SHAPE, dtype=np.float32)
    for i, blob in enumerate(values):
        try:
            with np.load(io.BytesIO(blob)) as z:
                keys = list(z.keys())
                if len(keys) == 1:
                    out[i] = z[keys[0]].reshape(STAMP_SHAPE)
                else:
                    out[i] = np.stack([z[k] for k in _band_keys(keys)])
        except Exception as exc:  # noqa: BLE001 -- np.load raises many types for bad bytes
            raise StampFormatError(f"{where}: row {i}: cannot decode stamp_npz ({exc})") from exc
    return out


def _band_keys(keys):
    for pattern in ("{}", "image_{}", "img_{}"):
        if all(pattern.format(b) in keys for b in "grz"):
            return [pattern.format(b) for b in "grz"]
    raise KeyError(f"npz keys {keys} are neither one array nor per-band g/r/z arrays")


def iter_row_groups(path: str | os.PathLike, columns: list[str] | None = None,
                    row_groups: list[int] | None = None) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield (table without the stamp column, stamps (N, 3, 64, 64) float32) per row group,
    so memory holds one row group at a time. ``columns`` limits the other columns read."""
    pf = open_stamps(path)
    if "stamp" not in pf.schema_arrow.names:
        raise StampFormatError(f"{path}: no 'stamp' column")
    want = None if columns is None else list(dict.fromkeys(list(columns) + ["stamp"]))
    for i in row_groups if row_groups is not None else range(pf.num_row_groups):
        t = read_row_group(pf, path, i, want)
        try:
            stamps = decode_stamps(t["stamp"])
        except StampFormatError as exc:
            raise StampFormatError(f"{path}: row group {i}: {exc}") from exc
        yield t.drop_columns(["stamp"]), stamps
