"""Training throughput (images/s) of ConvNeXt models at 64x64 and loader samples/s.

For each model: forward + backward + AdamW step on random 64x64 batches, channels_last,
with the precision given (bf16 autocast on GPU by default, fp32 on CPU), optionally with
torch.compile. Then the stamp loader's samples/s on a stamp file written here in the
pipeline's format, with the requested DataLoader workers, and the ratio
loader samples/s / training images/s (>= 1 means the loader keeps up).
Prints JSON. Usage:
  python benchmarks/training_throughput.py                       # CPU: demo + tiny models
  python benchmarks/training_throughput.py --device cuda --models convnext_tiny --batch 512 \\
      --compile both --workers 8 16                              # GPU (e.g. H100, GH200)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from lensfinder.training.data import LoaderConfig, StampStream
from lensfinder.training.model import ModelConfig, build_model
from lensfinder.stamps import ROW_GROUP_ROWS, encode_stamps, writer_options


def train_rate(name: str, device: str, batch: int, steps: int, precision: str, compile_: bool) -> dict:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).to(device)
    if compile_:
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 64, 64, device=device).to(memory_format=torch.channels_last)
    y = (torch.rand(batch, device=device) < 0.5).float()
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")

    def step():
        with torch.autocast(device, dtype=amp) if amp else torch.autocast(device, enabled=False):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3 if not compile_ else 5):  # warm-up (and compilation)
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    out = {"model": name, "precision": precision, "compile": compile_, "batch": batch,
           "images_per_s": round(steps * batch / dt, 1)}
    if device == "cuda":
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def loader_rate(workers: int, n: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stamps" / "part-1-of-1.parquet"
        path.parent.mkdir()
        rng = np.random.default_rng(0)
        schema = None
        writer = None
        for start in range(0, n, ROW_GROUP_ROWS):
            m = min(ROW_GROUP_ROWS, n - start)
            t = pa.table({"sample_id": np.arange(start, start + m, dtype=np.int64),
                          "label": (rng.random(m) < 0.5).astype(np.int8), "split": np.full(m, "train"),
                          "stamp": encode_stamps(rng.normal(0, 0.01, (m, 3, 64, 64)).astype(np.float32))})
            if writer is None:
                schema = t.schema
                writer = pq.ParquetWriter(path, schema, **writer_options(schema))
            writer.write_table(t)
        writer.close()
        ds = StampStream([path], "train", LoaderConfig(batch_size=batch, num_workers=workers), 0, train=True)
        t = time.perf_counter()
        seen = sum(len(b["y"]) for b in DataLoader(ds, batch_size=None, num_workers=workers))
        dt = time.perf_counter() - t
    return {"workers": workers, "samples": seen, "samples_per_s": round(seen / dt, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["convnext_atto", "convnext_tiny"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--precision", default=None, help="bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)")
    ap.add_argument("--compile", choices=["off", "on", "both"], default="off")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--loader-samples", type=int, default=8192)
    args = ap.parse_args()
    precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    training = [train_rate(m, args.device, args.batch, args.steps, precision, c) for m in args.models for c in compiles]
    loading = [loader_rate(w, args.loader_samples, args.batch) for w in args.workers]
    fastest = max(t["images_per_s"] for t in training)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'} x{os.cpu_count()}"
    print(json.dumps({
        "benchmark": "training_throughput", "device": device, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "training": training, "loader": loading,
        "loader_over_fastest_training": {l["workers"]: round(l["samples_per_s"] / fastest, 2) for l in loading},
    }, indent=2))


if __name__ == "__main__":
    main()
