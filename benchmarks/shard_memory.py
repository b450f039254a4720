"""Peak RSS and throughput of one phase-4c shard vs its number of stamps.

Renders a small mock sky, selects LRGs, builds a paired manifest and tiles it (same
galaxies, new sample ids) to each requested size, then runs ``inject_shard`` on it in a
fresh process and reads that process's VmHWM. Peak memory should not grow with the
number of stamps (one brick's coadds + one row group of stamps at a time).
With ``--loader-workers``, the phase-5 loader then streams the largest shard (its
samples/s and peak RSS in a fresh process); with ``--npz-rows`` a shard is also written
with the legacy ``stamp_npz`` column for the disk comparison; throughput is extrapolated
to ``--target`` stamps on ``--target-cores`` cores (shards are independent jobs).
With ``--baseline REV`` the largest shard is also injected by the package as it was at
git revision REV (extracted with ``git archive``, run in its own process on the same
manifest and coadds), and the JSON reports the speed ratio of this tree to it, measured in
one run on one machine.
Prints JSON. Usage: python benchmarks/shard_memory.py [--rows 5000 20000] [--baseline REV]
  scale test: python benchmarks/shard_memory.py --rows 20000 100000 --npz-rows 5000 --loader-workers 2
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
from lensfinder.inject import InjectConfig, inject_shard
from lensfinder.population import Population, Priors
from lensfinder.sky.cutout_source import LocalCoadds
r = inject_shard(sys.argv[1], LocalCoadds(sys.argv[2]), 0, 1, sys.argv[3], sys.argv[4], Population(Priors(), 0, "bench"),
                 InjectConfig(write_npz=sys.argv[5] == "1"))
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(json.dumps({"vmhwm_kb": int(hwm), "n_written": r["n_written"], "seconds": r["seconds"]}))
"""
LOADER = """
import json, sys, time
from torch.utils.data import DataLoader
from lensfinder.training.data import LoaderConfig, StampStream
workers = int(sys.argv[2])
ds = StampStream([sys.argv[1]], sys.argv[3], LoaderConfig(batch_size=256, num_workers=workers), 0, train=True)
t = time.perf_counter()
n = sum(len(b["y"]) for b in DataLoader(ds, batch_size=None, num_workers=workers))
dt = time.perf_counter() - t
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(json.dumps({"samples": n, "samples_per_s": round(n / dt, 1), "main_process_peak_rss_mb": round(int(hwm) / 1024, 1)}))
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
    ap.add_argument("--npz-rows", type=int, default=0)
    ap.add_argument("--loader-workers", type=int, default=0)
    ap.add_argument("--target", type=int, default=1_300_000)
    ap.add_argument("--target-cores", type=int, default=64)
    ap.add_argument("--baseline", help="git revision whose package injects the largest shard too, for the speed ratio")
    args = ap.parse_args()
    cfg = MockSkyConfig(seed=5, bricks=("1501p020", "1503p020"), brick_size_pix=1200)  # on the survey-bricks grid
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
        def run_shard(n, npz, src=REPO / "src", tag=""):
            mpath = tmp / f"manifest_{n}.parquet"
            if not mpath.exists():
                pq.write_table(tiled(base, n), mpath)
            out = tmp / f"out_{n}_{int(npz)}{tag}.parquet"
            env = {**os.environ, "PYTHONPATH": str(src)}  # which package version injects
            proc = subprocess.run([sys.executable, "-c", CHILD, str(mpath), str(tmp / "coadd"), str(out),
                                   str(tmp / "out.json"), "1" if npz else "0"], capture_output=True, text=True, check=True,
                                  env=env)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            return out, {"rows": n, "stamps_written": r["n_written"], "peak_rss_mb": round(r["vmhwm_kb"] / 1024, 1),
                         "seconds": r["seconds"], "stamps_per_s_per_core": round(r["n_written"] / r["seconds"], 1),
                         "disk_mb_per_1000_stamps": round(os.path.getsize(out) / r["n_written"] * 1000 / 2**20, 2)}

        outputs = []
        for n in args.rows:
            out, r = run_shard(n, False)
            outputs.append(out)
            results.append(r)
        extra = {}
        if args.npz_rows:
            out, r = run_shard(args.npz_rows, True)
            md = pq.ParquetFile(out).metadata
            names = md.schema.names
            for col in ("stamp", "stamp_npz"):
                i = names.index(col)
                size = sum(md.row_group(g).column(i).total_compressed_size for g in range(md.num_row_groups))
                extra[f"disk_mb_per_1000_{col}"] = round(size / md.num_rows * 1000 / 2**20, 2)
            extra["npz_shard"] = r
        if args.loader_workers:
            split = "train"
            proc = subprocess.run([sys.executable, "-c", LOADER, str(outputs[-1]), str(args.loader_workers), split],
                                  capture_output=True, text=True, check=True)
            extra["loader"] = {"workers": args.loader_workers, "split": split,
                               **json.loads(proc.stdout.strip().splitlines()[-1])}
        if args.baseline:
            old_src = tmp / "baseline"
            old_src.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "src"], capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
            _, old = run_shard(args.rows[-1], False, old_src / "src", "_baseline")
            extra["baseline"] = {"revision": args.baseline, **old,
                                 "speedup": round(results[-1]["stamps_per_s_per_core"] / old["stamps_per_s_per_core"], 2)}
        rate = results[-1]["stamps_per_s_per_core"]
        extra["extrapolation"] = {
            "target_stamps": args.target, "cores": args.target_cores,
            "phase4c_minutes": round(args.target / (rate * args.target_cores) / 60, 1),
            "disk_gb": round(args.target / 1000 * results[-1]["disk_mb_per_1000_stamps"] / 1024, 1),
            "assumes": "one shard per core, throughput per core as measured here (x86, 2-core VM)",
        }
    print(json.dumps({"benchmark": "shard_memory", "positives_fraction": 0.5, "results": results,
                      "rss_growth": round(results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"], 2),
                      "rows_growth": round(results[-1]["rows"] / results[0]["rows"], 2), **extra}, indent=2))


if __name__ == "__main__":
    main()
