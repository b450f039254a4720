"""Rule train: one training run (see lensfinder.training)."""
import logging
import sys
from pathlib import Path

from lensfinder.training.launch import launch

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
sys.stdout = sys.stderr
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
status = launch(snakemake.input.run_config, snakemake.input.stamps, Path(snakemake.output.best).parent)
if status != 0:
    # 75: interrupted with a checkpoint written; Snakemake's --retries resumes it
    raise SystemExit(status)
