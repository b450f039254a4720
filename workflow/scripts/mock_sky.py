"""Rule mock_sky: write one DR10-format sweep file from mock brick catalogues."""
import logging

from lensfinder.sky.mock import write_sweep

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
n = write_sweep(snakemake.input.catalogs, snakemake.output.sweep)
logging.info("wrote %d rows to %s", n, snakemake.output.sweep)
