"""The GPU suite: one prepared command that measures the production training path on one GPU.

Issue 30. In one call (<= 8 minutes on one H100/H200) it measures, and writes as JSON:

1. ``train_step``: ConvNeXt-Tiny at 64x64 through the pipeline's own ``train_step``
   (bf16 autocast, channels_last, grad clip, scheduler, the per-step loss read-back), with
   and without ``torch.compile``, at batch 256 and 1024: images/s and peak GPU memory;
2. ``loader``: the stamp loader (``StampStream`` + its DataLoader) on stamp Parquet in the
   pipeline's format, with 8 and 16 workers: samples/s, also with the host-to-device copy,
   against the fastest train-step rate;
3. ``profile``: a ``torch.profiler`` summary of loader-fed training steps (top operators by
   self device time, and how much of a step the GPU is busy);
4. ``gen3``: gen3's production run settings (``config/compare_full.yaml``) trained for 2
   epochs through ``lensfinder.training.fit.train``, then its test split scored: AUC and the
   top-score ties of float32 logits against the same scores stored as bf16 probabilities.

The dataset is written here in the pipeline's stamp format (``lensfinder.stamps``): by
default synthetic stamps (noise + a central early-type galaxy; positives add a faint arc,
a third of negatives a companion), since the device gets only the repository; ``--stamps``
takes real stamp files of a pipeline run instead (e.g. a demo run's v5_unpaired stamps).

``--smoke`` runs every part on CPU with a tiny model and dataset in seconds; it is run by
the test suite (tests/test_gpu_suite.py) so the script is known to work before device time
is spent on it. On a lent device (its python3 has torch, timm, pyarrow, scikit-learn)::

    PYTHONPATH=src python3 benchmarks/gpu_suite.py --out "$OUT"

Figures and the exact command go to benchmarks/RESULTS.md with the device name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lensfinder.metrics import evaluate_scores, scores_as_stored
from lensfinder.stamps import ROW_GROUP_ROWS, encode_stamps, writer_options
from lensfinder.training.config import RunConfig
from lensfinder.training.data import StampStream, stamp_loader
from lensfinder.training.distributed import autocast_dtype, init_runtime
from lensfinder.training.fit import train
from lensfinder.training.inference import score_split
from lensfinder.training.learner import build_learner
from lensfinder.training.loop import train_step
from lensfinder.training.model import build_model

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plan:
    """What one invocation measures; ``smoke`` shrinks every part to seconds on CPU."""

    model: str = "convnext_tiny"
    batches: tuple[int, ...] = (256, 1024)
    compile_modes: tuple[bool, ...] = (False, True)
    steps: int = 30
    workers: tuple[int, ...] = (8, 16)
    loader_passes: int = 3
    n_stamps: int = 16384
    profile_steps: int = 8
    profile_workers: int = 8
    gen3_epochs: int = 2
    gen3_workers: int = 8
    precision: str | None = None  # None: gen3's own (bf16)


# fp32 on CPU: bf16 autocast there is ~10x slower than fp32 and is not what a CPU run uses
SMOKE = Plan(model="convnext_atto", batches=(16,), compile_modes=(False,), steps=2, workers=(0, 1),
             loader_passes=1, n_stamps=160, profile_steps=2, profile_workers=0, gen3_epochs=2, gen3_workers=0,
             precision="fp32")


def synthetic_stamps(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(stamps (n, 3, 64, 64) float32 nanomaggies, labels (n,) int8): sky noise around a
    central early-type galaxy; half are positives with a faint blue arc 5-9 px from the
    centre, a third of the negatives have a compact companion at that distance instead, so
    extra flux alone does not separate the classes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64] - 31.5
    r, phi = np.hypot(xx, yy), np.arctan2(yy, xx)
    sigma = np.array([0.004, 0.006, 0.012], np.float32)[:, None, None]
    lrg_colour = np.array([0.3, 1.0, 2.0], np.float32)[:, None, None]
    arc_colour = np.array([1.0, 0.9, 0.7], np.float32)[:, None, None]
    labels = (rng.random(n) < 0.5).astype(np.int8)
    out = np.empty((n, 3, 64, 64), np.float32)
    for i in range(n):
        img = rng.normal(0.0, 1.0, (3, 64, 64)).astype(np.float32) * sigma
        img += lrg_colour * rng.uniform(0.05, 0.3) * np.exp(-0.5 * (r / rng.uniform(1.5, 3.0)) ** 2)
        radius, centre = rng.uniform(5, 9), rng.uniform(-np.pi, np.pi)
        if labels[i]:
            dphi = np.angle(np.exp(1j * (phi - centre)))
            arc = np.exp(-0.5 * ((r - radius) / 0.9) ** 2) * np.exp(-0.5 * (dphi / rng.uniform(0.4, 1.2)) ** 2)
            img += arc_colour * rng.uniform(0.01, 0.04) * arc
        elif rng.random() < 1 / 3:
            cx, cy = radius * np.cos(centre), radius * np.sin(centre)
            img += arc_colour * rng.uniform(0.05, 0.2) * np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / 1.2**2)
        out[i] = img
    return out, labels


def write_stamp_file(path: Path, stamps: np.ndarray, labels: np.ndarray, seed: int, first_id: int = 0) -> Path:
    """One stamp Parquet file in the pipeline's format, row groups of one split each
    (70/15/15 train/val/test by row), as phase 4d writes them; sample ids from ``first_id``."""
    n = len(labels)
    split = np.array(["train", "val", "test"])[np.searchsorted([0.7, 0.85], np.random.default_rng([seed, 1]).random(n))]
    writer = None
    for s in ("train", "val", "test"):
        idx = np.flatnonzero(split == s)
        for start in range(0, len(idx), ROW_GROUP_ROWS):
            rows = idx[start:start + ROW_GROUP_ROWS]
            t = pa.table({"sample_id": pa.array(rows.astype(np.int64) + first_id), "label": pa.array(labels[rows]),
                          "split": pa.array(np.full(len(rows), s)), "stamp": encode_stamps(stamps[rows])})
            if writer is None:
                writer = pq.ParquetWriter(path, t.schema, **writer_options(t.schema))
            writer.write_table(t)
    writer.close()
    return path


def make_dataset(out_dir: Path, n: int, seed: int) -> list[Path]:
    """Synthetic stamp files of ``n`` rows in all, written in chunks (memory stays flat)."""
    paths, chunk = [], 4096
    for k, start in enumerate(range(0, n, chunk)):
        stamps, labels = synthetic_stamps(min(chunk, n - start), seed + k)
        paths.append(write_stamp_file(out_dir / f"part-{k + 1}.parquet", stamps, labels, seed + k, start))
    return paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _gpu_peak_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def run_config(plan: Plan, batch: int, compile_: bool, workers: int, epochs: int = 1) -> RunConfig:
    """gen3's production settings (config/compare_full.yaml) at this batch, compile mode,
    worker count and epoch count."""
    import yaml

    runs = yaml.safe_load((REPO / "config" / "compare_full.yaml").read_text())["runs"]
    sections = {k: dict(runs["gen3"].get(k) or {}) for k in ("model", "loader", "train")}
    sections["model"].update(name=plan.model, compile=compile_)
    sections["loader"].update(batch_size=batch, num_workers=workers)
    sections["train"].update(epochs=epochs, **({"precision": plan.precision} if plan.precision else {}))
    return RunConfig.from_dict("gen3", 20261124, sections)


def measure_train_step(plan: Plan, paths, batch: int, compile_: bool) -> dict:
    """images/s of the pipeline's ``train_step`` on one device-resident batch."""
    rt = init_runtime()
    cfg = run_config(plan, batch, compile_, 0)
    lrn = build_learner(cfg, [str(p) for p in paths], rt)
    x = torch.randn(batch, 3, 64, 64, device=rt.device).contiguous(memory_format=torch.channels_last)
    b = {"x": x, "y": (torch.rand(batch, device=rt.device) < 0.5).float(), "n_skipped": 0}
    t0 = time.perf_counter()
    for _ in range(3 if not compile_ else 5):  # warm-up (and compilation)
        train_step(lrn, b, cfg, rt, False)
    _sync(rt.device)
    warm_s = time.perf_counter() - t0
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(plan.steps):
        train_step(lrn, b, cfg, rt, False)
    _sync(rt.device)
    dt = time.perf_counter() - t0
    return {"model": plan.model, "batch": batch, "compile": compile_, "precision": str(lrn.amp_dtype),
            "channels_last": cfg.model.channels_last, "steps": plan.steps, "warmup_s": round(warm_s, 1),
            "images_per_s": round(plan.steps * batch / dt, 1), "peak_gpu_memory_gb": _gpu_peak_gb(rt.device)}


def measure_loader(plan: Plan, paths, workers: int, batch: int, device: torch.device) -> dict:
    """samples/s of the training stream over ``loader_passes`` epochs, alone and with each
    batch copied to ``device`` (pinned, non-blocking)."""
    cfg = run_config(plan, batch, False, workers)
    ds = StampStream([str(p) for p in paths], "train", cfg.loader, cfg.seed, train=True, rank=0, world_size=1)
    out = {"workers": workers, "batch": batch}
    for label, to_device in (("host", False), ("to_device", True)):
        n, t0, first = 0, time.perf_counter(), None
        for epoch in range(plan.loader_passes):
            ds.set_epoch(epoch)
            for b in stamp_loader(ds, workers):
                if to_device:
                    x = b["x"].pin_memory() if device.type == "cuda" else b["x"]
                    x.to(device, non_blocking=True)
                n += len(b["y"])
                first = first or time.perf_counter() - t0
        _sync(device)
        dt = time.perf_counter() - t0
        out[label] = {"samples": n, "samples_per_s": round(n / dt, 1), "first_batch_s": round(first or 0, 2)}
    return out


def profile_steps(plan: Plan, paths, batch: int, out_dir: Path) -> dict:
    """``torch.profiler`` over loader-fed training steps: top operators and GPU busy time."""
    from torch.profiler import ProfilerActivity, profile, schedule

    rt = init_runtime()
    cfg = run_config(plan, batch, False, plan.profile_workers)
    lrn = build_learner(cfg, [str(p) for p in paths], rt)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if rt.device.type == "cuda" else [])
    n = plan.profile_steps
    it = iter(stamp_loader(lrn.train_ds, cfg.loader.num_workers))
    with profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=n)) as prof:
        t0 = None
        for i in range(n + 2):
            if i == 2:
                _sync(rt.device)
                t0 = time.perf_counter()
            try:
                b = next(it)
            except StopIteration:
                lrn.train_ds.set_epoch(i)
                it = iter(stamp_loader(lrn.train_ds, cfg.loader.num_workers))
                b = next(it)
            train_step(lrn, b, cfg, rt, False)
            prof.step()
        _sync(rt.device)
        wall = time.perf_counter() - t0
    sort = "self_cuda_time_total" if rt.device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=20)
    (out_dir / "gpu_suite_profile.txt").write_text(table)
    events = prof.key_averages()
    device_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events)
    top = sorted(events, key=lambda e: -(getattr(e, "self_device_time_total", 0) or e.self_cpu_time_total))[:10]
    return {"steps": n, "batch": batch, "workers": cfg.loader.num_workers,
            "wall_ms_per_step": round(1e3 * wall / n, 2),
            "device_busy_ms_per_step": round(device_us / 1e3 / n, 2) if rt.device.type == "cuda" else None,
            "top_ops": [{"name": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
                         "self_device_ms": round((getattr(e, "self_device_time_total", 0) or 0) / 1e3, 2)}
                        for e in top],
            "table": "gpu_suite_profile.txt"}


def train_gen3(plan: Plan, paths, batch: int, out_dir: Path) -> dict:
    """gen3 trained ``gen3_epochs`` epochs through the real training code, then its test
    split scored: AUC and top-score ties as float32 logits and as bf16 probabilities."""
    cfg = run_config(plan, batch, False, plan.gen3_workers, plan.gen3_epochs)
    cfg = replace(cfg, train=replace(cfg.train, early_stopping=replace(cfg.train.early_stopping, enabled=False)))
    t0 = time.perf_counter()
    result = train(cfg, [str(p) for p in paths], out_dir)
    seconds = time.perf_counter() - t0
    rt = init_runtime()
    model = build_model(cfg.model).to(rt.device)
    model.load_state_dict(torch.load(out_dir / "best.pt", map_location=rt.device, weights_only=True)["model"])
    _, lab, lgt = score_split(model, [str(p) for p in paths], "test", cfg, rt, autocast_dtype(cfg.train, rt.device))
    f32, b16 = evaluate_scores(lab, lgt, "logit_float32"), evaluate_scores(lab, lgt, "prob_bfloat16")
    top_neg = np.sort(lgt[lab == 0])[::-1][:100].copy()
    return {"epochs": plan.gen3_epochs, "status": result["status"], "seconds": round(seconds, 1),
            "history": [{k: e[k] for k in ("epoch", "train_loss", "auc", "seconds")} for e in result["history"]],
            "test": {"n_pos": f32["n_pos"], "n_neg": f32["n_neg"], "auc_float32": round(f32["auc"], 4),
                     "auc_bf16_prob": round(b16["auc"], 4),
                     "n_neg_tied_at_top_float32": f32["n_neg_tied_at_top"],
                     "n_neg_tied_at_top_bf16_prob": b16["n_neg_tied_at_top"],
                     "distinct_of_top100_neg_float32": int(np.unique(top_neg).size),
                     "distinct_of_top100_neg_bf16_prob": int(np.unique(scores_as_stored(top_neg, "prob_bfloat16")).size)},
            "float32_top_ties_ok": f32["n_neg_tied_at_top"] <= 1}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="directory for gpu_suite.json (default $OUT)")
    ap.add_argument("--smoke", action="store_true", help="every part on CPU, tiny, in seconds")
    ap.add_argument("--stamps", nargs="*", default=None, help="real stamp Parquet files instead of synthetic ones")
    args = ap.parse_args(argv)
    plan = SMOKE if args.smoke else Plan()
    if args.smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = init_runtime().device
    if not args.smoke and device.type != "cuda":
        sys.exit("gpu_suite: no CUDA device here; use --smoke on a CPU")
    report = {"benchmark": "gpu_suite", "smoke": args.smoke, "plan": plan.__dict__,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or 'x86'})",
              "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d"), "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}
    t_all = time.perf_counter()

    def save():
        report["seconds_total"] = round(time.perf_counter() - t_all, 1)
        (out / "gpu_suite.json").write_text(json.dumps(report, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.stamps:
            paths = [Path(p) for p in args.stamps]
            report["data"] = {"kind": "stamp files given", "files": [str(p) for p in paths]}
        else:
            t0 = time.perf_counter()
            paths = make_dataset(tmp, plan.n_stamps, 20261124)
            report["data"] = {"kind": "synthetic", "rows": plan.n_stamps, "write_s": round(time.perf_counter() - t0, 1)}
        report["train_step"] = []
        for compile_ in plan.compile_modes:
            for batch in plan.batches:
                report["train_step"].append(measure_train_step(plan, paths, batch, compile_))
                print(json.dumps(report["train_step"][-1]), flush=True)
                save()  # every figure survives a timeout
        best = max(r["images_per_s"] for r in report["train_step"])
        report["loader"] = [measure_loader(plan, paths, w, plan.batches[0], device) for w in plan.workers]
        for r in report["loader"]:
            r["host_over_best_step"] = round(r["host"]["samples_per_s"] / best, 2)
            r["to_device_over_best_step"] = round(r["to_device"]["samples_per_s"] / best, 2)
        save()
        report["profile"] = profile_steps(plan, paths, plan.batches[0], out)
        save()
        report["gen3"] = train_gen3(plan, paths, plan.batches[0], tmp / "gen3")
        save()
    print(json.dumps({k: report[k] for k in ("device", "seconds_total")}), flush=True)
    return report


if __name__ == "__main__":
    main()
