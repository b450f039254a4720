"""Rule compare: gen2 vs gen3 and the one-factor ablations (see lensfinder.gen2.compare)."""
import logging
import sys

from lensfinder.contracts import metric_key
from lensfinder.gen2.compare import compare_runs

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
rows, i = snakemake.params.rows, snakemake.input
per_seed = {k: iter(i[k]) for k in ("scores", "bench_scores", "bench_metrics")}  # rows order, seeds in order
inputs = {r["run"]: {"history": h, "metrics": m,
                     **{k: [next(it) for _ in snakemake.params.replicates[r["run"]]] for k, it in per_seed.items()}}
          for r, h, m in zip(rows, i.histories, i.metrics)}
c = compare_runs(rows, inputs, snakemake.output.json, snakemake.output.html, snakemake.output.png,
                 snakemake.params.configs, snakemake.params.sky_rates)
for s in c["summary"]:
    logging.info("%s: %s %.3f", s["label"], metric_key(1e-3), s[metric_key(1e-3)])
