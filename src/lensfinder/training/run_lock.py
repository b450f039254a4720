"""One trainer per run directory.

Snakemake 9 drops every lock of a working directory when any invocation there finishes,
so a second invocation could start a second ``train`` job of a run whose first is still
training: it resumed from the live checkpoint and published beside it (issue 32). The
training process therefore holds an exclusive ``flock`` on ``<run dir>/train.lock`` for as
long as it trains; a second trainer fails at once, naming the holder's pid and host. The
kernel releases the lock when the holder dies, so a killed run never leaves it behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class RunLocked(RuntimeError):
    """Another process is training this run."""


class RunLock:
    """Context manager: hold ``<out_dir>/train.lock`` exclusively (only where ``active``:
    rank 0 of a DDP job holds it for all ranks)."""

    def __init__(self, out_dir, run: str, active: bool = True):
        self.path, self.run, self.active = Path(out_dir) / "train.lock", run, active
        self._f = None

    def __enter__(self) -> "RunLock":
        if not self.active:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            try:
                h = json.loads(holder)
                who = f"pid {h['pid']} on {h['host']} (since {h['since']})"
            except (ValueError, KeyError):
                who = "another process"
            raise RunLocked(f"run {self.run} is already being trained by {who}: {self.path} is locked. Wait for "
                            "it to finish (or stop it); two trainers of one run would publish over each other") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        f.flush()
        self._f = f
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None
