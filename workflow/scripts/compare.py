"""Rule compare: gen2 vs gen3 and the one-factor ablations (see lensfinder.gen2.compare)."""
import logging
import sys

from lensfinder.contracts import metric_key
from lensfinder.gen2.compare import compare_runs

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
rows = snakemake.params.rows
scores = iter(snakemake.input.scores)  # in rows order, each row's seeds in order
inputs = {r["run"]: {"history": h, "metrics": m, "scores": [next(scores) for _ in snakemake.params.replicates[r["run"]]]}
          for r, h, m in zip(rows, snakemake.input.histories, snakemake.input.metrics)}
c = compare_runs(rows, inputs, snakemake.output.json, snakemake.output.html, snakemake.output.png,
                 snakemake.params.configs)
for s in c["summary"]:
    logging.info("%s: %s %.3f", s["label"], metric_key(1e-3), s[metric_key(1e-3)])
