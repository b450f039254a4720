"""Stamp decode throughput: raw fixed-size ``stamp`` column vs legacy ``stamp_npz``.

Writes N realistic stamps (sky noise at DR10 depth, a galaxy, a faint arc-like ring) with
both columns, then times reading + decoding every row group into (N, 3, 64, 64) float32
for each column, and reports samples/s, their ratio and bytes on disk per 1,000 stamps.
Prints JSON. Usage: python benchmarks/stamp_decode.py [--n 8192]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder.stamps import ROW_GROUP_ROWS, decode_npz, decode_stamps, encode_npz, encode_stamps, writer_options


def realistic_stamps(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64] - 32.0
    r2 = xx**2 + yy**2
    sigma = np.array([0.0035, 0.0066, 0.017])[None, :, None, None]  # g, r, z pixel noise (nanomaggies)
    gal = np.exp(-0.5 * r2 / 9.0)[None, None] * np.array([0.05, 0.15, 0.3])[None, :, None, None]
    ring = np.exp(-0.5 * (np.sqrt(r2) - 8) ** 2)[None, None] * np.array([0.02, 0.02, 0.015])[None, :, None, None]
    amp = rng.uniform(0.5, 2, (n, 1, 1, 1))
    return (amp * gal + ring * (rng.random((n, 1, 1, 1)) < 0.5) + rng.normal(size=(n, 3, 64, 64)) * sigma).astype(np.float32)


def column_bytes(path, name):
    md = pq.ParquetFile(path).metadata
    idx = md.schema.names.index(name)
    return sum(md.row_group(i).column(idx).total_compressed_size for i in range(md.num_row_groups))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stamps.parquet"
        schema = pa.schema([("stamp", pa.binary(49152)), ("stamp_npz", pa.binary())])
        with pq.ParquetWriter(path, schema, **writer_options(schema)) as w:  # as the pipeline writes
            for start in range(0, args.n, ROW_GROUP_ROWS):
                s = realistic_stamps(min(ROW_GROUP_ROWS, args.n - start), seed=start)
                w.write_table(pa.table({"stamp": encode_stamps(s), "stamp_npz": encode_npz(s)}, schema=schema))
        pf = pq.ParquetFile(path)
        timings = {}
        for col, decode in (("stamp", decode_stamps), ("stamp_npz", decode_npz)):
            t = time.perf_counter()
            total = 0
            for i in range(pf.num_row_groups):
                arr = decode(pf.read_row_group(i, columns=[col])[col])
                total += float(arr[:, 1, 32, 32].sum())  # touch the data
            timings[col] = time.perf_counter() - t
        result = {
            "benchmark": "stamp_decode", "n_stamps": args.n, "row_group_rows": ROW_GROUP_ROWS,
            "samples_per_s": {k: round(args.n / v) for k, v in timings.items()},
            "raw_over_npz_speedup": round(timings["stamp_npz"] / timings["stamp"], 1),
            "mb_per_1000_stamps": {c: round(column_bytes(path, c) / args.n * 1000 / 2**20, 2) for c in timings},
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
