"""Rule population_gallery: a dataset's controls, one row per population (lensfinder.gallery)."""
import logging
import sys

from lensfinder.gallery import write_population_gallery

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
counts = write_population_gallery(
    snakemake.input.stamps, snakemake.output.png,
    title=f"{snakemake.wildcards.dataset}: controls by population (first by sample_id), asinh g,r,z")
logging.info("controls per population: %s", counts)
