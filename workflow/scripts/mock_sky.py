"""Rule mock_sky: write one DR10-format sweep file and its photo-z sweep from mock brick catalogues."""
import logging
import sys

from lensfinder.sky.mock import write_sweep

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
n = write_sweep(snakemake.input.catalogs, snakemake.output.sweep, snakemake.output.photoz)
logging.info("wrote %d rows to %s and %s", n, snakemake.output.sweep, snakemake.output.photoz)
