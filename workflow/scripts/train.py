"""Rule train: one training run (see lensfinder.train)."""
import logging
import sys

from lensfinder.train import launch

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
sys.stdout = sys.stderr
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
status = launch(snakemake.params.run, snakemake.wildcards.run, snakemake.params.seed, snakemake.params.dataset_dir,
                snakemake.params.out_dir, snakemake.params.nproc)
if status != 0:
    # 75: interrupted with a checkpoint written; Snakemake's --retries resumes it
    raise SystemExit(status)
