"""Rule bench_score: one run scored on the test bench (see lensfinder.bench_score)."""
import logging
import sys

from lensfinder.bench import BenchConfig
from lensfinder.bench_score import score_bench

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i, o = snakemake.input, snakemake.output
m = score_bench(i.run_config, i.best, i.stamps, BenchConfig.from_dict(snakemake.params.scoring), o.scores, o.metrics,
                o.selection, o.purity)
logging.info("bench: %s", {k: v for k, v in m["sky_prevalence"].items() if not k.endswith("_ci95")})
