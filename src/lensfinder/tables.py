"""Atomic writing of the pipeline's tables and small JSON reports.

Every product is written to a temporary file in the destination directory and renamed
into place, so a killed job never leaves a half-written file that looks complete (and
Snakemake's own incomplete-file tracking is not the only safety net).
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_COMPRESSION = "zstd"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary name per output: a killed job's leftover is replaced when the one job
    # that writes this output (Snakemake runs one per output) runs again.
    tmp = path.parent / f".{path.name}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(b"")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(table: pa.Table, path: str | os.PathLike, row_group_size: int = 65536) -> None:
    """Write ``table`` to ``path`` atomically (zstd, row groups of ``row_group_size`` rows)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION, row_group_size=row_group_size)


class ParquetStreamWriter:
    """Append record batches to one Parquet file without holding them all in memory.

    The file appears at ``path`` only when :meth:`close` succeeds. ``compression`` and
    ``use_dictionary`` take pyarrow's per-column forms (a dict / a list of column names).
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, compression: str | dict = PARQUET_COMPRESSION,
                 use_dictionary: bool | list[str] = True, write_page_checksum: bool = False):
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, schema, compression=compression, use_dictionary=use_dictionary,
                                        write_page_checksum=write_page_checksum)
        self.n_rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return  # an empty row group only trips readers that batch by row group
        self._writer.write_table(table)
        self.n_rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._writer.close()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> "ParquetStreamWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def _json_safe(obj):
    # JSON has no NaN/inf; write null so any reader (and the report) can parse the file.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _json_safe(obj.item())
    return obj


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON atomically; numpy scalars and NaN are made JSON-safe."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_json_safe(obj), indent=2, sort_keys=False) + "\n")
