"""Training a run from start (or from its checkpoint) to its selected model.

Every gen2 failure mechanism is a config switch (``runs.<name>`` in config), so the
comparison can switch each back on:

    loader.legacy_sharding      frags[rank::world] in every DataLoader worker (data)
    train.schedule              gen2_epoch_tmax_per_step (objectives)
    train.loss / focal_alpha    focal loss with alpha 0.25 (objectives)
    train.eval_score_dtype      prob_bfloat16: rank sigmoid probabilities stored in bf16 (metrics)
    train.early_stopping        enabled false: train every epoch, keep the last (early_stopping)

Resuming from ``last.pt`` after a kill reproduces the uninterrupted run: data order,
augmentation and dropout are all seeded from (seed, epoch, step), not from process state.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext

from lensfinder.contracts import TPR_KEYS
from lensfinder.training.checkpoint import Checkpoints, data_fingerprint
from lensfinder.training.config import RunConfig
from lensfinder.training.distributed import Runtime, gather_objects, init_runtime
from lensfinder.training.early_stopping import select_epoch, should_stop
from lensfinder.training.inference import scores_table
from lensfinder.training.learner import Learner, build_learner
from lensfinder.training.loop import train_one_epoch, validate
from lensfinder.training.preemption import SigtermFlag
from lensfinder.training.run_lock import RunLock
from lensfinder.training.state import TrainState


def _progress(cfg: RunConfig, lrn: Learner, epoch: int, rt: Runtime):
    if not (sys.stderr.isatty() and rt.is_main):
        return nullcontext()
    from tqdm import tqdm
    return tqdm(total=lrn.steps_per_epoch, desc=f"{cfg.name} epoch {epoch}", leave=False)


def _interrupt(ck: Checkpoints, lrn: Learner, state: TrainState, cfg: RunConfig, rt: Runtime) -> dict:
    """Checkpoint mid-epoch (each rank's running sums too, so the resumed epoch adds up)."""
    if rt.ddp:
        state.partial_per_rank = gather_objects(state.partial, rt)
    ck.save_last(lrn, state)
    ck.mark_interrupted(state)
    if rt.is_main:
        print(f"[{cfg.name}] interrupted at epoch {state.epoch} step {state.step_in_epoch}: "
              f"checkpoint written to {ck.last}", flush=True)
    return {"status": "interrupted", "epoch": state.epoch, "step_in_epoch": state.step_in_epoch}


def _end_epoch(ck: Checkpoints, lrn: Learner, state: TrainState, paths, cfg: RunConfig, rt: Runtime,
               t0: float) -> None:
    """Validate, select, decide whether to stop, and write the epoch's checkpoint and history."""
    rec, sid, lab, lgt = validate(lrn, state, paths, cfg, rt, t0)
    ck.write_val_scores(state.epoch, scores_table(sid, lab, lgt))
    es = cfg.train.early_stopping
    selected = select_epoch(state, rec, es)
    rec["best_epoch"] = state.best_epoch
    state.end_epoch(rec)
    state.finished = should_stop(state, es, cfg.train.epochs)
    if selected:
        ck.save_selected(lrn.eval_model, rec["epoch"])
    ck.save_last(lrn, state)
    ck.write_history({"run": cfg.name, "fingerprint": cfg.fingerprint(), "data_fingerprint": ck.data_fp,
                      "best_epoch": state.best_epoch,
                      "stopped_early": bool(es.enabled and state.epoch < cfg.train.epochs), "epochs": state.history})
    if rt.is_main:
        tprs = " ".join(f"{k} {rec[k]:.3f}" for k in TPR_KEYS)
        print(f"[{cfg.name}] epoch {rec['epoch']} loss {rec['train_loss']:.4f} {tprs} "
              f"auc {rec['auc']:.4f} tied-neg {rec['n_neg_tied_at_top']} lr {rec['lr']:.2e} "
              f"{rec['seconds']}s", flush=True)


def train(cfg: RunConfig, stamp_paths, out_dir) -> dict:
    """Train (or resume) run ``cfg`` on the stamp files ``stamp_paths`` (the rule's declared
    inputs; nothing is discovered on disk), then publish ``out_dir/best.pt`` and
    ``out_dir/history.json``. Returns {"status": "finished" | "interrupted", ...}.
    Works in one process and under ``torchrun``."""
    rt = init_runtime()
    paths = sorted(str(p) for p in stamp_paths)
    if not paths:
        raise FileNotFoundError(f"{cfg.name}: no stamp files given")
    with RunLock(out_dir, cfg.name, active=rt.is_main):  # one trainer per run directory
        return _train(cfg, paths, out_dir, rt)


def _train(cfg: RunConfig, paths: list[str], out_dir, rt) -> dict:
    lrn = build_learner(cfg, paths, rt)
    ck = Checkpoints(cfg, out_dir, data_fingerprint(paths), rt)
    state = ck.resume(lrn, rt.device)
    if state.finished:
        ck.publish(state)
        return {"status": "finished", "resumed": True, "history": state.history}
    ck.clear_interrupted()
    if rt.is_main:
        print(f"[{cfg.name}] training from epoch {state.epoch} step {state.step_in_epoch} "
              f"({rt.world} process(es), {lrn.steps_per_epoch} steps/epoch, lr {lrn.lr:.2e})", flush=True)
    steps_here = 0
    with SigtermFlag() as sigterm:
        while state.epoch < cfg.train.epochs and not state.finished:
            t0 = time.perf_counter()
            with _progress(cfg, lrn, state.epoch, rt) as bar:
                steps_here = train_one_epoch(lrn, state, cfg, rt, sigterm, steps_here, bar)
            if steps_here is None:
                return _interrupt(ck, lrn, state, cfg, rt)
            _end_epoch(ck, lrn, state, paths, cfg, rt, t0)
    ck.publish(state)
    return {"status": "finished", "history": state.history}
