"""Phase 5 training: ConvNeXt on stamp Parquet with correct sharding, a per-step cosine
schedule, float32 losses and metrics, early stopping, and resumable checkpoints.

Every gen2 failure mechanism is a config switch here (``runs.<name>`` in config), so the
comparison can switch each back on:

    loader.legacy_sharding      frags[rank::world] in every DataLoader worker
    train.schedule              gen2_epoch_tmax_per_step: CosineAnnealingLR(T_max=epochs)
                                stepped every optimiser step, as gen2 did
    train.loss / focal_alpha    focal loss with alpha 0.25 (down-weights positives)
    train.eval_score_dtype      prob_bfloat16: rank sigmoid probabilities stored in bf16
    train.early_stopping        enabled false: train every epoch, keep the last

One code path serves one process and DDP (``torchrun``; gloo on CPU, nccl on GPU).
Resuming from ``last.pt`` after a kill (SIGTERM writes it mid-epoch) reproduces the
uninterrupted run: data order, augmentation and dropout are all seeded from
(seed, epoch, step), not from process state.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lensfinder import seeding
from lensfinder.data import StampStream
from lensfinder.metrics import evaluate_scores
from lensfinder.model import build_model
from lensfinder.stamps import open_stamps
from lensfinder.training.config import RunConfig, TrainConfig, load_run_config
from lensfinder.tables import atomic_path, write_json, write_parquet

GEN2_HISTORY_KEYS = ("tpr@fpr1e-4", "tpr@fpr0.001", "fpr@tpr0.50", "fpr@tpr0.70", "fpr@tpr0.85")


def data_fingerprint(paths) -> str:
    """Hash of each stamp file's name, size, modification time and Parquet footer (row
    counts, byte sizes, column statistics): what Snakemake itself compares, read without
    touching the data. A checkpoint trained on other stamps must not be resumed; a copy
    that changes mtimes restarts training (wasted time, never a stale model)."""
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        md = open_stamps(p).metadata.to_dict()
        md.pop("created_by", None)
        h.update(f"{Path(p).name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(json.dumps(md, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _stale_reason(ckpt: dict | None, fingerprint: str, data_fp: str) -> str | None:
    """Why a saved training state must not be resumed (None: resume it)."""
    if ckpt is None:
        return None
    if ckpt.get("fingerprint") != fingerprint:
        return f"the run configuration changed (fingerprint {ckpt.get('fingerprint')} -> {fingerprint})"
    if ckpt.get("data_fingerprint") != data_fp:
        return "the stamps changed"
    return None


# --------------------------------------------------------------------------- helpers
def loss_fn(logits: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Mean BCE or focal loss, always in float32 (bf16 logits lose the small losses)."""
    logits, y = logits.float(), y.float()
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    if cfg.loss == "bce":
        return ce.mean()
    if cfg.loss != "focal":
        raise ValueError(f"unknown loss {cfg.loss!r}")
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = cfg.focal_alpha * y + (1 - cfg.focal_alpha) * (1 - y)
    return (alpha_t * (1 - p_t) ** cfg.focal_gamma * ce).mean()


def make_scheduler(opt, cfg: TrainConfig, total_steps: int):
    """Per-step LR schedule. ``cosine_steps``: linear warmup then cosine to min_lr over
    ``total_steps`` optimiser steps. ``gen2_epoch_tmax_per_step``: gen2's
    CosineAnnealingLR(T_max=epochs) stepped every step (the LR oscillates every
    2 x epochs steps)."""
    if cfg.schedule == "gen2_epoch_tmax_per_step":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    if cfg.schedule != "cosine_steps":
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    warm = max(1, int(cfg.warmup_frac * total_steps))
    floor = cfg.min_lr / cfg.lr  # relative to the (possibly scaled) base LR of the optimiser

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def scaled_lr(cfg: TrainConfig, effective_batch: int) -> float:
    """Learning rate for an effective (all-rank) batch under ``cfg.lr_scaling``."""
    ratio = effective_batch / cfg.lr_reference_batch
    factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}.get(cfg.lr_scaling)
    if factor is None:
        raise ValueError(f"unknown lr_scaling {cfg.lr_scaling!r}")
    return cfg.lr * factor


def autocast_dtype(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type == "cpu"):
        return None
    if cfg.precision in ("auto", "bf16"):
        return torch.bfloat16
    if cfg.precision == "fp16":
        return torch.float16
    raise ValueError(f"unknown precision {cfg.precision!r}")


class _Stopper:
    """SIGTERM (SLURM at its time limit) asks for a checkpoint at the next step boundary."""

    def __init__(self):
        self.requested = False
        self._old = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._old)


def ignore_sigterm(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: SLURM's time limit sends SIGTERM to every process of
    the job, DataLoader workers included; a worker that died of it would crash the main
    process ("worker killed by signal") before it could checkpoint. Workers ignore it and
    the main process, which checkpoints and exits, shuts them down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stamp_loader(ds, num_workers: int) -> DataLoader:
    """A DataLoader over a batching :class:`StampStream` whose workers leave SIGTERM to the
    main process (:func:`ignore_sigterm`)."""
    return DataLoader(ds, batch_size=None, num_workers=num_workers,
                      worker_init_fn=ignore_sigterm if num_workers else None)


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rank_seed(seed: int, *parts) -> int:
    return int(seeding.row_keys(seed, "torch", *[np.int64(p) for p in parts])[0] % (2**63 - 1))


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def score_split(model, paths, split: str, cfg: RunConfig, device, amp_dtype, rank: int, world: int):
    """(sample_id, label, float32 logit) of every sample of ``split``, gathered exactly
    across ranks (each rank scores its own row groups; no padding, no duplicates)."""
    ds = StampStream(paths, split, cfg.loader, cfg.seed, train=False, rank=rank, world_size=world)
    loader = stamp_loader(ds, cfg.loader.num_workers)
    model.eval()
    ids, labels, logits = [], [], []
    for b in loader:
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with ctx:
            out = model(b["x"].to(device, memory_format=torch.channels_last),
                        b["meta"].to(device) if "meta" in b else None)
        logits.append(out.float().cpu().numpy())  # scores leave the network as float32 logits
        ids.append(b["sample_id"].numpy())
        labels.append(b["y"].numpy())
    local = (np.concatenate(ids) if ids else np.zeros(0, np.int64),
             np.concatenate(labels) if labels else np.zeros(0, np.float32),
             np.concatenate(logits) if logits else np.zeros(0, np.float32))
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, local)
        local = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.argsort(local[0], kind="stable")
    sid, lab, lgt = (a[order] for a in local)
    if len(np.unique(sid)) != len(sid):
        raise RuntimeError(f"{split}: a sample was scored twice")
    return sid, lab.astype(np.int8), lgt.astype(np.float32)


def scores_table(sid, labels, logits) -> pa.Table:
    return pa.table({"sample_id": pa.array(sid, pa.int64()), "label": pa.array(labels, pa.int8()),
                     "logit": pa.array(logits, pa.float32())})


def _publish(work: Path, out: Path, rank: int) -> None:
    if rank != 0:
        return
    for name in ("best.pt", "history.json"):
        with atomic_path(out / name) as tmp:
            tmp.write_bytes((work / name).read_bytes())
    # every epoch's validation logits in one table, for lensfinder.diagnose
    parts = []
    for path in sorted((work / "val_scores").glob("epoch_*.parquet")):
        t = pq.read_table(path)
        parts.append(t.add_column(0, "epoch", pa.array(np.full(t.num_rows, int(path.stem[6:]), np.int32))))
    write_parquet(pa.concat_tables(parts), out / "val_scores.parquet")


# --------------------------------------------------------------------------- training
def _better(cand: tuple, best: tuple | None, min_delta: float) -> bool:
    if best is None:
        return True
    if cand[0] > best[0] + min_delta:
        return True
    return abs(cand[0] - best[0]) <= min_delta and cand[1] > best[1]


def train(cfg: RunConfig, stamp_paths, out_dir) -> dict:
    """Train (or resume) run ``cfg`` on the stamp files ``stamp_paths`` (the rule's declared
    inputs; nothing is discovered on disk).

    Working state lives in ``out_dir/ckpt/`` (``last.pt``, the running ``best.pt``,
    ``history.json``, ``val_scores/epoch_NNN.parquet``) -- not workflow outputs, so a
    failed (preempted) job keeps them and its retry resumes. When training finishes,
    ``out_dir/best.pt`` and ``out_dir/history.json`` are published.
    Returns {"status": "finished" | "interrupted", ...}. Works under ``torchrun``."""
    out = Path(out_dir)
    work = out / "ckpt"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ddp = world > 1
    if ddp and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if ddp else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp_dtype = autocast_dtype(cfg.train, device)
    paths = sorted(str(p) for p in stamp_paths)
    if not paths:
        raise FileNotFoundError(f"{cfg.name}: no stamp files given")
    tc = cfg.train

    torch.manual_seed(_rank_seed(cfg.seed, 0))  # identical initial weights on every rank
    model = build_model(cfg.model).to(device)
    raw_model = model
    if cfg.model.compile:
        model = torch.compile(model)  # the uncompiled module keeps the weights for checkpoints
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    lr = scaled_lr(tc, cfg.loader.batch_size * world)
    opt = torch.optim.AdamW(raw_model.parameters(), lr=lr, weight_decay=tc.weight_decay)
    train_ds = StampStream(paths, "train", cfg.loader, cfg.seed, train=True, rank=rank, world_size=world)
    # optimiser steps per epoch (every rank takes the largest rank's count); the epoch-0
    # count sets the schedule's horizon (later epochs differ by at most a few steps)
    spe = max(train_ds.n_batches(r, cfg.loader.num_workers) for r in range(world))
    sched = make_scheduler(opt, tc, spe * tc.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = torch.optim.swa_utils.AveragedModel(
        raw_model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(tc.ema_decay)) if tc.ema_decay else None
    n_train = train_ds.n_rows()

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best": None, "best_epoch": None,
             "epochs_since_best": 0, "partial": {"loss_sum": 0.0, "samples": 0, "skipped": 0}, "finished": False}
    last = work / "last.pt"
    data_fp = data_fingerprint(paths)
    ckpt = torch.load(last, map_location=device, weights_only=True) if last.exists() else None
    stale = _stale_reason(ckpt, cfg.fingerprint(), data_fp)
    if stale:
        # Snakemake reran this job because its configuration or stamps changed: the old
        # state must not be resumed. Keep it aside (ckpt.previous/) and train from scratch.
        if ddp:
            dist.barrier()  # every rank has read last.pt before it moves
        if rank == 0:
            print(f"[{cfg.name}] {stale} since {last} was written: moving the old state to "
                  f"{out / 'ckpt.previous'} and starting over", flush=True)
            shutil.rmtree(out / "ckpt.previous", ignore_errors=True)
            work.rename(out / "ckpt.previous")
        if ddp:
            dist.barrier()
        ckpt = None
    if ckpt is not None:
        raw_model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        state = json.loads(ckpt["state"])
        if state.get("partial_per_rank"):
            state["partial"] = state["partial_per_rank"][rank]
            state["partial_per_rank"] = None
        if state["finished"]:
            _publish(work, out, rank)
            return {"status": "finished", "resumed": True, "history": state["history"]}

    def checkpoint(path: Path):
        if rank != 0:
            return
        _save({"model": raw_model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
               "fingerprint": cfg.fingerprint(), "data_fingerprint": data_fp, "state": json.dumps(state), "config": json.dumps(asdict(cfg), default=str)},
              path)

    (work / "INTERRUPTED").unlink(missing_ok=True)
    stopper = _Stopper()
    interactive = sys.stderr.isatty() and rank == 0
    steps_this_process = 0
    if rank == 0:
        print(f"[{cfg.name}] training from epoch {state['epoch']} step {state['step_in_epoch']} "
              f"({world} process(es), {spe} steps/epoch, lr {lr:.2e})", flush=True)
    try:
        while state["epoch"] < tc.epochs and not state["finished"]:
            epoch = state["epoch"]
            train_ds.set_epoch(epoch)
            loader = stamp_loader(train_ds, cfg.loader.num_workers)
            model.train()
            t0 = time.perf_counter()
            bar = None
            if interactive:
                from tqdm import tqdm
                bar = tqdm(total=spe, desc=f"{cfg.name} epoch {epoch}", leave=False)
            # Ranks can hold different numbers of batches (whole row groups per rank). All
            # ranks take the same number of optimiser steps -- the largest count -- and a rank
            # out of data takes zero-loss padding steps: its zero gradient enters DDP's
            # average, every rank applies the same update, optimiser states stay identical,
            # and every sample is still seen exactly once.
            n_steps = max(train_ds.n_batches(r, cfg.loader.num_workers) for r in range(world))
            batches = itertools.chain(loader, itertools.repeat(None))
            interrupted = False
            for step, batch in zip(range(n_steps), batches):
                if step < state["step_in_epoch"]:
                    continue  # resuming mid-epoch: these batches were trained before the kill
                torch.manual_seed(_rank_seed(cfg.seed, epoch, step, rank))  # dropout / drop-path
                padding = batch is None
                if padding:
                    batch = {"x": torch.zeros(1, 3, 64, 64), "y": torch.zeros(1), "n_skipped": 0}
                    if cfg.model.metadata:
                        batch["meta"] = torch.zeros(1, 6)
                x = batch["x"].to(device, non_blocking=True, memory_format=torch.channels_last)
                y = batch["y"].to(device, non_blocking=True)
                meta = batch["meta"].to(device) if "meta" in batch else None
                ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
                with ctx:
                    logits = model(x, meta)
                loss = loss_fn(logits, y, tc) * (0.0 if padding else 1.0)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if tc.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(raw_model.parameters(), tc.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                if ema is not None:
                    ema.update_parameters(raw_model)
                if not padding:
                    state["partial"]["loss_sum"] += float(loss.detach()) * len(y)
                    state["partial"]["samples"] += len(y)
                state["partial"]["skipped"] += int(batch["n_skipped"])
                state["step_in_epoch"] = step + 1
                state["global_step"] += 1
                steps_this_process += 1
                if bar is not None:
                    bar.update(1)
                stop = stopper.requested or (tc.stop_after_steps and steps_this_process >= tc.stop_after_steps)
                if ddp:
                    flag = torch.tensor([float(stop)], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stop = bool(flag.item())
                if stop:
                    interrupted = True
                    break
            if bar is not None:
                bar.close()
            if interrupted:
                if ddp:  # each rank's running sums, so a resumed epoch still adds up exactly
                    parts = [None] * world
                    dist.all_gather_object(parts, state["partial"])
                    state["partial_per_rank"] = parts
                checkpoint(last)
                if rank == 0:  # torchrun reports any failing worker as exit 1: leave a marker
                    (work / "INTERRUPTED").write_text(f"epoch {epoch} step {state['step_in_epoch']}\n")
                    print(f"[{cfg.name}] interrupted at epoch {epoch} step {state['step_in_epoch']}: "
                          f"checkpoint written to {last}", flush=True)
                return {"status": "interrupted", "epoch": epoch, "step_in_epoch": state["step_in_epoch"]}

            # ---- end of epoch: reduce, evaluate, early stopping, checkpoints
            totals = torch.tensor([state["partial"]["loss_sum"], state["partial"]["samples"], state["partial"]["skipped"]],
                                  dtype=torch.float64, device=device)
            if ddp:
                dist.all_reduce(totals)
            eval_model = ema.module if ema is not None else raw_model
            sid, lab, lgt = score_split(eval_model, paths, "val", cfg, device, amp_dtype, rank, world)
            rec = {"epoch": epoch, "train_loss": float(totals[0] / max(totals[1], 1)),
                   "samples_seen_epoch": int(totals[1]), "n_train": n_train,
                   "duplication_factor": float(totals[1]) / max(n_train, 1),
                   "samples_seen": (state["history"][-1]["samples_seen"] if state["history"] else 0) + int(totals[1]),
                   "n_skipped_nonfinite": int(totals[2]), "lr": float(sched.get_last_lr()[0]),
                   "seconds": round(time.perf_counter() - t0, 2),
                   "mean_abs_logit_pos": float(np.abs(lgt[lab == 1]).mean()) if (lab == 1).any() else None,
                   "mean_abs_logit_neg": float(np.abs(lgt[lab == 0]).mean()) if (lab == 0).any() else None,
                   "max_logit_neg": float(lgt[lab == 0].max()) if (lab == 0).any() else None}
            rec.update(evaluate_scores(lab, lgt, tc.eval_score_dtype))
            if tc.eval_score_dtype != "logit_float32":
                ref = evaluate_scores(lab, lgt, "logit_float32")
                rec["logit_float32"] = {k: ref[k] for k in GEN2_HISTORY_KEYS + ("auc", "pauc", "n_neg_tied_at_top")}
            if rank == 0:
                write_parquet(scores_table(sid, lab, lgt), work / "val_scores" / f"epoch_{epoch:03d}.parquet")
            es = tc.early_stopping
            cand = (rec[es.metric], rec[es.tiebreak])
            improved = _better(cand, tuple(state["best"]) if state["best"] else None, es.min_delta)
            if improved:
                state["best"], state["best_epoch"], state["epochs_since_best"] = list(cand), epoch, 0
            else:
                state["epochs_since_best"] += 1
            rec["best_epoch"] = state["best_epoch"]
            state["history"].append(rec)
            state["epoch"] = epoch + 1
            state["step_in_epoch"] = 0
            state["partial"] = {"loss_sum": 0.0, "samples": 0, "skipped": 0}
            if es.enabled and state["epochs_since_best"] >= es.patience:
                state["finished"] = True
            if state["epoch"] >= tc.epochs:
                state["finished"] = True
            if rank == 0:
                if improved or not es.enabled:
                    # without early stopping gen2 kept the last weights; with it, the best
                    _save({"model": eval_model.state_dict(), "epoch": epoch, "fingerprint": cfg.fingerprint(),
                           "data_fingerprint": data_fp, "config": json.dumps(asdict(cfg), default=str)},
                          work / "best.pt")
                checkpoint(last)
                write_json({"run": cfg.name, "fingerprint": cfg.fingerprint(), "data_fingerprint": data_fp,
                            "best_epoch": state["best_epoch"],
                            "stopped_early": bool(es.enabled and state["epoch"] < tc.epochs), "epochs": state["history"]},
                           work / "history.json")
                print(f"[{cfg.name}] epoch {epoch} loss {rec['train_loss']:.4f} "
                      f"tpr@fpr1e-3 {rec['tpr@fpr0.001']:.3f} tpr@fpr1e-4 {rec['tpr@fpr1e-4']:.3f} "
                      f"auc {rec['auc']:.4f} tied-neg {rec['n_neg_tied_at_top']} lr {rec['lr']:.2e} "
                      f"{rec['seconds']}s", flush=True)
        _publish(work, out, rank)
        return {"status": "finished", "history": state["history"]}
    finally:
        stopper.restore()


# --------------------------------------------------------------------------- launching
def launch(run_config, stamp_paths, out_dir) -> int:
    """Train the run of ``run_config`` (a ``run_config.json``) on ``stamp_paths`` in this
    process, or under ``torchrun`` with the record's ``nproc`` processes on this node (the
    same code path). Returns an exit status: 0 finished, 75 interrupted (checkpoint
    written; rerun to resume)."""
    cfg, rec = load_run_config(run_config)
    out = Path(out_dir)
    if rec["nproc"] <= 1:
        result = train(cfg, stamp_paths, out)
        return 0 if result["status"] == "finished" else 75
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={rec['nproc']}",
           "-m", "lensfinder.train", "--run-config", str(run_config), "--out-dir", str(out),
           "--stamps", *map(str, stamp_paths)]
    import subprocess
    rc = subprocess.run(cmd, check=False).returncode
    return 75 if rc != 0 and (out / "ckpt" / "INTERRUPTED").exists() else rc


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Train one lensfinder run (use under torchrun for DDP).")
    ap.add_argument("--run-config", required=True, help="runs/<run>/run_config.json (the run_config rule's output)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--stamps", nargs="*", help="stamp files (default: the run_config's 'stamps')")
    args = ap.parse_args(argv)
    cfg, rec = load_run_config(args.run_config)
    result = train(cfg, args.stamps or rec["stamps"], args.out_dir)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0 if result["status"] == "finished" else 75


if __name__ == "__main__":
    sys.exit(main())
