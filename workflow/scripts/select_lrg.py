"""Rule select_lrg: phase-3 LRG selection of one sweep file (see lensfinder.select)."""
import logging
import sys

from lensfinder.select import select_sweep

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
summary = select_sweep(snakemake.input.sweep, snakemake.output.parquet, snakemake.output.summary,
                       chunk_rows=snakemake.params.chunk_rows, maskbits=snakemake.params.maskbits,
                       photoz_path=snakemake.input.get("photoz"))
logging.info("%s: %d of %d rows selected", summary["sweep"], summary["n_selected"], summary["n_rows"])
