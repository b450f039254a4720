"""Rule diagnose: every diagnostic of one run (see lensfinder.gen2.diagnose)."""
import logging
import sys

from lensfinder.gen2.diagnose import diagnose_run

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i, o = snakemake.input, snakemake.output
d = diagnose_run(i.run_config, i.history, i.val_scores, i.manifest, i.audit, i.flux_baseline, o.diagnostics, o.ties, o.overfitting)
logging.info("%s: cliffs %s", d["run"], d["cliffs"])
