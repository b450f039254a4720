"""Rule evaluate: test-split metrics of a run's best checkpoint (see lensfinder.evaluate)."""
import logging
import sys

from lensfinder.evaluate import evaluate_run

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
m = evaluate_run(snakemake.params.run_config, snakemake.input.best, snakemake.params.dataset_dir,
                 snakemake.params.out_dir)
logging.info("%s test: %s", m["run"], {k: m["metrics"][k] for k in ("auc", "tpr@fpr0.001", "tpr@fpr1e-4")})
