"""Rule candidates: score the parent sample, rank, cross-match, gallery (see lensfinder.candidates)."""
import logging
import sys

from lensfinder.candidates import write_candidates

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
o = snakemake.output
s = write_candidates(snakemake.input.run_config, snakemake.input.best, [snakemake.input.stamps],
                     snakemake.input.known_lenses, o.parquet, o.csv, o.summary, o.png, o.html,
                     snakemake.params.n_gallery, snakemake.params.mock)
logging.info("%d scored; known lenses in parent %d; top-K %s", s["n_parent"], s["n_known_in_parent"],
             s["recovered_in_top_k"])
