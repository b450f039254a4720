"""Rule flux_baseline: flux-only classifier of one dataset (see lensfinder.flux_baseline)."""
import logging
import sys

from lensfinder.flux_baseline import flux_baseline
from lensfinder.tables import write_json

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
res = flux_baseline(snakemake.input.stamps, snakemake.params.seed, snakemake.wildcards.dataset)
write_json(res, snakemake.output[0])
logging.info("%s: %s", snakemake.wildcards.dataset, {m: r.get("test", {}).get("auc") for m, r in res["models"].items()})
