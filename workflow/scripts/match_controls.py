"""Rule match_controls: phase-4d controls matched after injection (see lensfinder.matching)."""
import logging
import sys

from lensfinder.matching import run_matching

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
audit = run_matching(snakemake.input.stamps, snakemake.output.stamps, snakemake.output.audit,
                     snakemake.params.controls_per_positive, snakemake.wildcards.dataset,
                     snakemake.params.stamp_compression)
logging.info("%s: max |SMD| %.3f -> %.3f; %d rows", audit["dataset"],
             audit["smd_positives_vs_candidates"]["max_abs"], audit["smd_positives_vs_controls"]["max_abs"],
             audit["n_rows_written"])
