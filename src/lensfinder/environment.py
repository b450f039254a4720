"""The software environment that workflow jobs run in."""

from __future__ import annotations

import os


def export_pythonpath(src: str) -> None:
    """Put ``src`` (a checkout's ``src/`` directory) first on ``PYTHONPATH`` of every job
    this Snakemake process starts -- locally, in a conda environment (``--sdm conda``,
    where lensfinder is not installed) or through SLURM (``sbatch`` exports the submitting
    environment) -- so every job runs this checkout's lensfinder."""
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
