"""Synthetic stamp files for phase-5 tests: learnable (positives carry a ring)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder.stamps import encode_stamps, writer_options


def write_stamp_files(root, n_files=2, groups=5, rows=24, seed=0, nan_rows=(), bad_type=False):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64] - 32.0
    ring = np.exp(-0.5 * (np.hypot(xx, yy) - 9) ** 2 / 2.0).astype(np.float32)
    paths, sid = [], 0
    splits = np.array(["train", "train", "train", "val", "test"])
    for f in range(n_files):
        path = root / f"stamps/part-{f + 1}-of-{n_files}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = None
        for g in range(groups):
            n = rows
            label = (rng.random(n) < 0.5).astype(np.int8)
            x = rng.normal(0, 0.01, (n, 3, 64, 64)).astype(np.float32)
            x += label[:, None, None, None] * 0.05 * ring[None, None]
            ids = np.arange(sid, sid + n, dtype=np.int64)
            for r in nan_rows:
                if r in ids:
                    x[ids == r] = np.nan
            sid += n
            stamp = pa.array([b"x"] * n, pa.binary()) if bad_type else encode_stamps(x)
            t = pa.table({"sample_id": ids, "label": label, "split": splits[rng.integers(0, 5, n)],
                          "population": np.full(n, "ordinary"),
                          "stamp": stamp, **{c: np.full(n, v, np.float32) for c, v in
                          (("psfsize_g", 1.4), ("psfsize_r", 1.3), ("psfsize_z", 1.2), ("psfdepth_g", 1000.0),
                           ("psfdepth_r", 300.0), ("psfdepth_z", 60.0))}})
            writer = writer or pq.ParquetWriter(path, t.schema, **writer_options(t.schema))
            writer.write_table(t)
        writer.close()
        paths.append(path)
    return paths


def train_run(run: dict, name: str, seed: int, data_dir, out_dir, nproc: int = 1) -> int:
    """Write ``out_dir/run_config.json`` as the run_config rule does, then train on the
    stamp files under ``data_dir`` (this test's own files) with lensfinder.training.launch.launch."""
    from pathlib import Path

    from lensfinder.tables import write_json
    from lensfinder.training.launch import launch
    from lensfinder.training.config import RunConfig, run_config_record

    stamps = sorted(str(p) for p in Path(data_dir).glob("stamps/part-*.parquet"))
    path = Path(out_dir) / "run_config.json"
    write_json(run_config_record(RunConfig.from_dict(name, seed, run), "synthetic", nproc, stamps), path)
    return launch(path, stamps, out_dir)
