"""Peak RSS and throughput of one phase-4c shard vs its number of stamps.

Renders a small mock sky, selects LRGs, builds a paired manifest and tiles it (same
galaxies, new sample ids) to each requested size, then runs ``inject_shard`` on it in a
fresh process and reads that process's VmHWM. Peak memory should not grow with the
number of stamps (one brick's coadds + one row group of stamps at a time).
Prints JSON. Usage: python benchmarks/shard_memory.py [--rows 5000 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder.manifest import DatasetConfig, write_manifest
from lensfinder.select import gather_parent, select_sweep
from lensfinder.sky.mock import MockSkyConfig, bricks_in_sweep, sweep_names, write_brick, write_sweep

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
from lensfinder.inject import inject_shard
r = inject_shard(sys.argv[1], sys.argv[2], 0, 1, sys.argv[3], sys.argv[4])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(json.dumps({"vmhwm_kb": int(hwm), "n_written": r["n_written"], "seconds": r["seconds"]}))
"""


def tiled(manifest: pa.Table, n: int) -> pa.Table:
    reps = -(-n // manifest.num_rows)
    t = pa.concat_tables([manifest] * reps).slice(0, n)
    sid = t["sample_id"].to_numpy() + (np.arange(n) // manifest.num_rows).astype(np.int64) * (1 << 60)
    return t.set_column(t.schema.get_field_index("sample_id"), "sample_id", pa.array(sid)).sort_by(
        [("brickname", "ascending"), ("sample_id", "ascending")])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[5000, 20000])
    args = ap.parse_args()
    cfg = MockSkyConfig(seed=5, bricks=("1501p020", "1502p020"), brick_size_pix=1200)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for b in cfg.bricks:
            write_brick(cfg, b, tmp / "coadd", tmp / f"{b}.parquet")
        parts, sums = [], []
        for name in sweep_names(cfg.bricks):
            write_sweep([tmp / f"{b}.parquet" for b in bricks_in_sweep(cfg.bricks, name)], tmp / name)
            parts.append(tmp / f"{name}.sel.parquet")
            sums.append(select_sweep(tmp / name, parts[-1]))
        gather_parent(parts, sums, tmp / "parent.parquet", tmp / "sel.json")
        write_manifest(tmp / "parent.parquet", DatasetConfig.from_dict("bench", {"control": "paired", "split": "galaxy"}),
                       1, REPO / "resources/known_lenses.csv.gz", tmp / "manifest.parquet", tmp / "audit.json")
        base = pq.read_table(tmp / "manifest.parquet")
        for n in args.rows:
            mpath = tmp / f"manifest_{n}.parquet"
            pq.write_table(tiled(base, n), mpath)
            proc = subprocess.run([sys.executable, "-c", CHILD, str(mpath), str(tmp / "coadd"), str(tmp / "out.parquet"),
                                   str(tmp / "out.json")], capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append({"rows": n, "stamps_written": r["n_written"], "peak_rss_mb": round(r["vmhwm_kb"] / 1024, 1),
                            "seconds": r["seconds"], "stamps_per_s_per_core": round(r["n_written"] / r["seconds"], 1),
                            "disk_mb_per_1000_stamps": round(os.path.getsize(tmp / "out.parquet") / r["n_written"] * 1000 / 2**20, 2)})
    print(json.dumps({"benchmark": "shard_memory", "positives_fraction": 0.5, "results": results,
                      "rss_growth": round(results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"], 2),
                      "rows_growth": round(results[-1]["rows"] / results[0]["rows"], 2)}, indent=2))


if __name__ == "__main__":
    main()
