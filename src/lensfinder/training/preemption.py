"""Preemption: SLURM at its time limit (and ``scancel``) sends SIGTERM; training writes a
checkpoint at the next step boundary and exits 75, and the retry resumes mid-epoch."""

from __future__ import annotations

import signal


class SigtermFlag:
    """Records SIGTERM instead of dying of it; a context manager that restores the old
    handler on exit."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handle(self, signum, frame):
        self.requested = True

    def __enter__(self) -> "SigtermFlag":
        self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._old)
