"""One trainer per run directory.

Snakemake 9 drops every lock of a working directory when any invocation there finishes,
so a second invocation could start a second ``train`` job of a run whose first is still
training: it resumed from the live checkpoint and published beside it (issue 32). The
training process therefore holds an exclusive ``flock`` on ``<run dir>/train.lock`` for as
long as it trains; a second trainer fails at once, naming the holder's pid and host. The
kernel releases the lock when the holder dies, so a killed run never leaves it behind.

Scoring holds the same lock *shared* while it reads ``best.pt``
(:class:`lensfinder.training.inference.SelectedModel`):
readers do not block each other, but a trainer cannot start while a checkpoint is being
read, and a reader fails at once while a trainer holds the run -- the file it would score
may be replaced under it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class RunLocked(RuntimeError):
    """Another process is training this run (or, to a trainer, reading its checkpoint)."""


def _trainer(holder: str) -> str | None:
    """'pid P on HOST (since T)' from the lock file's text; None where no trainer wrote it
    (the holders are readers, who write nothing)."""
    try:
        h = json.loads(holder)
        return f"pid {h['pid']} on {h['host']} (since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return None


class RunLock:
    """Context manager: hold ``<out_dir>/train.lock`` exclusively to train (only where
    ``active``: rank 0 of a DDP job holds it for all ranks), or shared to read the run's
    checkpoint (``shared=True``)."""

    def __init__(self, out_dir, run: str, active: bool = True, shared: bool = False):
        self.path, self.run, self.active, self.shared = Path(out_dir) / "train.lock", run, active, shared
        self._f = None

    def __enter__(self) -> "RunLock":
        if not self.active:
            return self
        f = self._open()
        if f is None:
            return self
        try:
            fcntl.flock(f, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            trainer = _trainer(f.read().strip())
            f.close()
            raise RunLocked(self._refusal(trainer)) from None
        if not self.shared:
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
            f.flush()
        self._f = f
        return self

    def _open(self):
        if not self.shared:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a+")
        try:
            return open(self.path, "a+")
        except OSError:  # a read-only copy of results: flock works on a read-only descriptor too,
            try:         # and where there is no lock file, no trainer can have written one there
                return open(self.path)
            except FileNotFoundError:
                return None

    def _refusal(self, trainer: str | None) -> str:
        if self.shared:
            return (f"run {self.run} is being trained by {trainer or 'another process'}: {self.path} is locked, and "
                    "its best.pt may be replaced while it is read. Evaluate it after the training finishes")
        if trainer is None:
            return (f"run {self.run} is being evaluated (its best.pt is read under {self.path}): a trainer started now "
                    "would replace the checkpoint being scored. Train it after the evaluation finishes")
        return (f"run {self.run} is already being trained by {trainer}: {self.path} is locked. Wait for "
                "it to finish (or stop it); two trainers of one run would publish over each other")

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            if not self.shared:  # a later refusal must not name a trainer that has finished
                self._f.seek(0)
                self._f.truncate()
                self._f.flush()
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None
