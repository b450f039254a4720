"""Scoring with a trained network: validation during training, the test split in
evaluation, the parent sample in candidates. Scores leave the network as float32 logits;
what a run *stores* (gen2: bf16 probabilities) is :mod:`lensfinder.metrics`'s business.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from lensfinder.training.config import RunConfig, load_run_config, require_same_run
from lensfinder.training.data import StampStream, stamp_loader
from lensfinder.training.distributed import Runtime, autocast, autocast_dtype, gather_objects
from lensfinder.training.model import build_model
from lensfinder.training.run_lock import RunLock


@torch.no_grad()
def score_split(model, paths, split: str, cfg: RunConfig, rt: Runtime, amp_dtype):
    """(sample_id (N,) int64, label (N,) int8, logit (N,) float32) of every sample of
    ``split`` in the stamp files ``paths``, sorted by sample_id and gathered exactly across
    ranks (each rank scores its own row groups; no padding, no duplicates)."""
    device = rt.device
    ds = StampStream(paths, split, cfg.loader, cfg.seed, train=False, rank=rt.rank, world_size=rt.world)
    model.eval()
    ids, labels, logits = [], [], []
    for b in stamp_loader(ds, cfg.loader.num_workers):
        with autocast(device, amp_dtype):
            out = model(b["x"].to(device, memory_format=torch.channels_last),
                        b["meta"].to(device) if "meta" in b else None)
        logits.append(out.float().cpu().numpy())
        ids.append(b["sample_id"].numpy())
        labels.append(b["y"].numpy())
    local = (np.concatenate(ids) if ids else np.zeros(0, np.int64),
             np.concatenate(labels) if labels else np.zeros(0, np.float32),
             np.concatenate(logits) if logits else np.zeros(0, np.float32))
    if rt.ddp:
        parts = gather_objects(local, rt)
        local = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.argsort(local[0], kind="stable")
    sid, lab, lgt = (a[order] for a in local)
    if len(np.unique(sid)) != len(sid):
        raise RuntimeError(f"{split}: a sample was scored twice")
    return sid, lab.astype(np.int8), lgt.astype(np.float32)


def scores_table(sid, labels, logits) -> pa.Table:
    """The ``scores.parquet`` / ``val_scores`` table: sample_id, label, float32 logit."""
    return pa.table({"sample_id": pa.array(sid, pa.int64()), "label": pa.array(labels, pa.int8()),
                     "logit": pa.array(logits, pa.float32())})


class SelectedModel:
    """A run's published model: its settings, the network with ``best.pt``'s weights on
    the best device, and where it came from. Refuses a checkpoint written by another
    configuration than ``run_config_path``'s."""

    def __init__(self, run_config_path, best_path):
        self.cfg, _ = load_run_config(run_config_path)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.best_path = best_path
        # Read once, under the run's shared lock: the bytes hashed are the bytes scored, and
        # no trainer of this run can replace them meanwhile (nor start while they are read).
        with RunLock(Path(best_path).parent, self.cfg.name, shared=True):
            raw = Path(best_path).read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self.checkpoint = torch.load(io.BytesIO(raw), map_location=self.device, weights_only=True)
        require_same_run(best_path, self.checkpoint["fingerprint"], self.cfg, run_config_path)
        self.model = build_model(self.cfg.model).to(self.device)
        self.model.load_state_dict(self.checkpoint["model"])

    @property
    def epoch(self) -> int:
        return int(self.checkpoint["epoch"])

    @property
    def data_fingerprint(self) -> str | None:
        return self.checkpoint.get("data_fingerprint")

    def score(self, stamp_paths, split: str):
        """:func:`score_split` of ``split`` with this model, in this process."""
        return score_split(self.model, stamp_paths, split, self.cfg, Runtime(0, 1, 0, self.device),
                           autocast_dtype(self.cfg.train, self.device))

    def provenance(self) -> dict:
        """What a product scored with this model came from: configuration fingerprint,
        checkpoint file, its SHA-256 and epoch."""
        return {"fingerprint": self.cfg.fingerprint(), "data_fingerprint": self.data_fingerprint,
                "checkpoint": str(self.best_path), "checkpoint_sha256": self.sha256,
                "checkpoint_epoch": self.epoch}
