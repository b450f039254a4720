"""Rule train: one training run (see lensfinder.training)."""
import logging
import sys
from pathlib import Path

from lensfinder.training.launch import launch

sys.stderr = open(snakemake.log[0], "a")  # tracebacks land in the rule's log too; "a": a refused second job must not wipe a live trainer's log
sys.stdout = sys.stderr
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
status = launch(snakemake.input.run_config, snakemake.input.stamps, Path(snakemake.output.best).parent)
if status != 0:
    # 75: interrupted with a checkpoint written; Snakemake's --retries resumes it. Said on
    # the job's own stderr too (the SLURM log): Snakemake removes the rule log before the
    # retry, and its own "exit status 75" line can be lost while it shuts down on SIGTERM.
    print(f"train {snakemake.wildcards.run}: interrupted, checkpoint written; exit {status} "
          "so that a retry resumes", file=sys.__stderr__, flush=True)
    raise SystemExit(status)
