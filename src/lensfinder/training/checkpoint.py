"""Checkpoints: what is saved, when a saved state may be resumed, and what is published.

Working state lives in ``<run>/ckpt/``: ``last.pt`` (weights, optimiser, schedule, scaler,
EMA and the :class:`TrainState`), the selected ``best.pt``, ``history.json`` and every
epoch's validation logits. None of it is a workflow output, so a preempted job keeps it
and its retry resumes. A state written for another configuration or other stamps is never
resumed: it is moved to ``ckpt.previous/`` and training starts over. Only rank 0 writes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lensfinder.contracts import History, check
from lensfinder.stamps import open_stamps
from lensfinder.tables import atomic_path, write_json, write_parquet
from lensfinder.training.config import RunConfig
from lensfinder.training.distributed import Runtime, barrier
from lensfinder.training.learner import Learner
from lensfinder.training.state import TrainState


def data_fingerprint(paths) -> str:
    """Hash of each stamp file's name, size, modification time and Parquet footer (row
    counts, byte sizes, column statistics): what Snakemake itself compares, read without
    touching the data. A copy that changes mtimes restarts training (wasted time, never a
    stale model)."""
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        md = open_stamps(p).metadata.to_dict()
        md.pop("created_by", None)
        h.update(f"{Path(p).name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(json.dumps(md, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def stale_reason(ckpt: dict | None, fingerprint: str, data_fp: str) -> str | None:
    """Why a saved training state must not be resumed (None: resume it)."""
    if ckpt is None:
        return None
    if ckpt.get("fingerprint") != fingerprint:
        return f"the run configuration changed (fingerprint {ckpt.get('fingerprint')} -> {fingerprint})"
    if ckpt.get("data_fingerprint") != data_fp:
        return "the stamps changed"
    return None


def save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Checkpoints:
    """The checkpoint directory of one run, as seen by one rank."""

    def __init__(self, cfg: RunConfig, out_dir, data_fp: str, rt: Runtime):
        self.cfg, self.data_fp, self.rt = cfg, data_fp, rt
        self.out = Path(out_dir)
        self.work = self.out / "ckpt"
        self.last = self.work / "last.pt"

    def _identity(self) -> dict:
        return {"fingerprint": self.cfg.fingerprint(), "data_fingerprint": self.data_fp,
                "config": json.dumps(asdict(self.cfg), default=str), "torch_threads": torch.get_num_threads()}

    def _pin_threads(self, ckpt: dict) -> None:
        """Resume with the intra-op thread count the checkpoint was written with: CPU float
        reductions are split over threads, so another count changes the sums' last digits and
        the resumed history drifts from an uninterrupted run's (seen: --cores 2 then 1)."""
        saved = ckpt.get("torch_threads")
        if saved and saved != torch.get_num_threads():
            if self.rt.is_main:
                print(f"[{self.cfg.name}] the checkpoint was written with {saved} torch threads, this process has "
                      f"{torch.get_num_threads()}: resuming with {saved} so the history matches an uninterrupted run "
                      "(give the job as many cores as before to avoid oversubscribing them)", flush=True)
            torch.set_num_threads(saved)

    def resume(self, learner: Learner, device: torch.device) -> TrainState:
        """The saved state, loaded into ``learner`` -- or a fresh one when there is none or
        it is stale (Snakemake reran this job because its configuration or stamps changed;
        the old state is kept aside in ``ckpt.previous/``)."""
        ckpt = torch.load(self.last, map_location=device, weights_only=True) if self.last.exists() else None
        stale = stale_reason(ckpt, self.cfg.fingerprint(), self.data_fp)
        if stale:
            barrier(self.rt)  # every rank has read last.pt before it moves
            if self.rt.is_main:
                print(f"[{self.cfg.name}] {stale} since {self.last} was written: moving the old state to "
                      f"{self.out / 'ckpt.previous'} and starting over", flush=True)
                shutil.rmtree(self.out / "ckpt.previous", ignore_errors=True)
                self.work.rename(self.out / "ckpt.previous")
            barrier(self.rt)
            ckpt = None
        if ckpt is None:
            return TrainState()
        self._pin_threads(ckpt)
        learner.load_state_dicts(ckpt)
        return TrainState.from_json(ckpt["state"], self.rt.rank)

    def save_last(self, learner: Learner, state: TrainState) -> None:
        if self.rt.is_main:
            save({**learner.state_dicts(), **self._identity(), "state": state.to_json()}, self.last)

    def save_selected(self, model: torch.nn.Module, epoch: int) -> None:
        """The weights that :func:`publish` will hand on as the run's model."""
        if self.rt.is_main:
            save({"model": model.state_dict(), "epoch": epoch, **self._identity()}, self.work / "best.pt")

    def mark_interrupted(self, state: TrainState) -> None:
        """torchrun reports any failing worker as exit 1: the marker says it was a checkpoint."""
        if self.rt.is_main:
            (self.work / "INTERRUPTED").write_text(f"epoch {state.epoch} step {state.step_in_epoch}\n")

    def clear_interrupted(self) -> None:
        (self.work / "INTERRUPTED").unlink(missing_ok=True)

    def val_scores_path(self, epoch: int) -> Path:
        return self.work / "val_scores" / f"epoch_{epoch:03d}.parquet"

    def write_val_scores(self, epoch: int, scores: pa.Table) -> None:
        """One epoch's validation logits (the table of ``inference.scores_table``)."""
        if self.rt.is_main:
            write_parquet(scores, self.val_scores_path(epoch))

    def write_history(self, history: dict) -> None:
        if self.rt.is_main:
            check(History, history, str(self.work / "history.json"))
            write_json(history, self.work / "history.json")

    def publish(self, state: TrainState) -> None:
        """Copy the selected weights and the history to the run directory, with every
        epoch's validation logits in one table (for the diagnostics)."""
        if not self.rt.is_main:
            return
        for name in ("best.pt", "history.json"):
            with atomic_path(self.out / name) as tmp:
                tmp.write_bytes((self.work / name).read_bytes())
        parts = []
        for rec in state.history:  # the epochs this run recorded, not whatever lies on disk
            t = pq.read_table(self.val_scores_path(rec["epoch"]))
            parts.append(t.add_column(0, "epoch", pa.array(np.full(t.num_rows, rec["epoch"], np.int32))))
        write_parquet(pa.concat_tables(parts), self.out / "val_scores.parquet")
