"""Peak memory of phase 3 vs sweep size: streaming keeps it flat.

Writes synthetic DR10-format sweep files of growing row counts, runs
``lensfinder.select.select_sweep`` on each in a fresh subprocess and reports its peak RSS,
once with the default chunking and once reading the whole file at once (the contrast).
Prints JSON. Usage: python benchmarks/phase3_memory.py [--rows 200000 800000 1600000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from lensfinder.sky.columns import SWEEP_COLUMNS, fits_format

# VmHWM (peak RSS of this address space), not getrusage's ru_maxrss: Linux carries
# ru_maxrss across exec, so a child would inherit the parent's peak from writing the file.
CHILD = """
import sys, time
from lensfinder.select import select_sweep
t = time.perf_counter()
s = select_sweep(sys.argv[1], sys.argv[2], chunk_rows=int(sys.argv[3]))
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(hwm, s["n_rows"], s["n_selected"], time.perf_counter() - t)
"""


def synthetic_sweep(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cols = []
    for name, (dtype, unit) in SWEEP_COLUMNS.items():
        if dtype.startswith("U"):
            arr = np.full(n, b"DEV" if name == "TYPE" else b"1501p020"[: int(dtype[1:])])
        elif name.startswith(("FLUX_", "FIBER")) and "IVAR" not in name:
            # red, LRG-like colours so a fair fraction passes the cuts
            offset = {"G": 3.2, "R": 1.6, "Z": 0.0, "W1": -1.6, "W2": -1.1}.get(name.split("_")[-1], 0.8)
            arr = (10 ** (-0.4 * (rng.uniform(19, 21, n) + offset - 22.5))).astype(dtype)
        elif name.startswith("MW_TRANSMISSION"):
            arr = rng.uniform(0.8, 1.0, n).astype(dtype)
        elif name == "GAIA_PHOT_G_MEAN_MAG":
            arr = np.zeros(n, dtype=dtype)
        elif name == "MASKBITS":
            arr = np.where(rng.random(n) < 0.9, 0, 2).astype(dtype)
        elif name == "OBJID":
            arr = np.arange(n, dtype=dtype) % (1 << 22)
        else:
            arr = rng.uniform(1, 5, n).astype(dtype)
        cols.append(fits.Column(name=name, format=fits_format(dtype), unit=unit or None, array=arr))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path, overwrite=True)


def measure(sweep: Path, out: Path, chunk_rows: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(sweep), str(out), str(chunk_rows)],
                          capture_output=True, text=True, check=True)
    rss_kb, n_rows, n_sel, secs = proc.stdout.split()
    return {"peak_rss_mb": round(int(rss_kb) / 1024, 1), "n_rows": int(n_rows), "n_selected": int(n_sel),
            "seconds": round(float(secs), 2), "rows_per_s": round(int(n_rows) / float(secs))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 800_000, 1_600_000])
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.rows:
            sweep = Path(tmp) / f"sweep-{n}.fits"
            synthetic_sweep(sweep, n)
            size_mb = os.path.getsize(sweep) / 2**20
            streamed = measure(sweep, Path(tmp) / "a.parquet", args.chunk_rows)
            whole = measure(sweep, Path(tmp) / "b.parquet", n)
            results.append({"rows": n, "sweep_mb": round(size_mb, 1), "streamed": streamed, "whole_file": whole})
            sweep.unlink()
    first, last = results[0], results[-1]
    print(json.dumps({
        "benchmark": "phase3_memory",
        "chunk_rows": args.chunk_rows,
        "results": results,
        "streamed_rss_growth": round(last["streamed"]["peak_rss_mb"] / first["streamed"]["peak_rss_mb"], 2),
        "whole_file_rss_growth": round(last["whole_file"]["peak_rss_mb"] / first["whole_file"]["peak_rss_mb"], 2),
        "rows_growth": last["rows"] / first["rows"],
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=2))


if __name__ == "__main__":
    main()
