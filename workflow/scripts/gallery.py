"""Rule gallery: colour PNG of a dataset's positives next to controls (lensfinder.gallery)."""
import logging
import sys

from lensfinder.gallery import write_gallery

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
n = write_gallery(snakemake.input.stamps, snakemake.output.png, snakemake.params.n_pairs,
                  title=f"{snakemake.wildcards.dataset}: positives (left) next to controls (right), asinh g,r,z")
logging.info("drew %d pairs", n)
