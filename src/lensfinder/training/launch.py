"""Starting a training: in this process, or under ``torchrun`` with the run's ``nproc``
processes on this node (the same code path), or -- on a cluster -- as
``python -m lensfinder.training.launch`` under ``srun torchrun`` (the multinode sbatch).
Exit status 0: finished; 75: interrupted with a checkpoint written (rerun to resume).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from lensfinder.training.config import load_run_config
from lensfinder.training.distributed import teardown
from lensfinder.training.fit import train

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: Snakemake's --retries reruns the job, which resumes


def launch(run_config, stamp_paths, out_dir) -> int:
    """Train the run of ``run_config`` (a ``run_config.json``) on ``stamp_paths``; returns
    the exit status."""
    cfg, rec = load_run_config(run_config)
    out = Path(out_dir)
    if rec["nproc"] <= 1:
        result = train(cfg, stamp_paths, out)
        return 0 if result["status"] == "finished" else EXIT_INTERRUPTED
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={rec['nproc']}",
           "-m", "lensfinder.training.launch", "--run-config", str(run_config), "--out-dir", str(out),
           "--stamps", *map(str, stamp_paths)]
    rc = subprocess.run(cmd, check=False).returncode
    return EXIT_INTERRUPTED if rc != 0 and (out / "ckpt" / "INTERRUPTED").exists() else rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lensfinder.training.launch",
                                 description="Train one lensfinder run (use under torchrun for DDP).")
    ap.add_argument("--run-config", required=True, help="runs/<run>/run_config.json (the run_config rule's output)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--stamps", nargs="*", help="stamp files (default: the run_config's 'stamps')")
    args = ap.parse_args(argv)
    cfg, rec = load_run_config(args.run_config)
    result = train(cfg, args.stamps or rec["stamps"], args.out_dir)
    teardown()
    return 0 if result["status"] == "finished" else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
