"""Rule evaluate: test-split metrics of a run's best checkpoint (see lensfinder.evaluate)."""
import logging
import sys
from pathlib import Path

from lensfinder.evaluate import evaluate_run

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i = snakemake.input
m = evaluate_run(i.run_config, i.best, i.stamps, Path(snakemake.output.metrics).parent, i.flux_baseline, i.negatives)
logging.info("%s test (%s): %s", m["run"], m["negatives"], {k: m["metrics"][k] for k in ("auc", "tpr@fpr0.001", "tpr@fpr1e-4")})
