"""Rule candidate_manifest: the parent sample as controls (see lensfinder.candidates)."""
import logging
import sys

from lensfinder.candidates import parent_manifest

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
logging.info("%d parent galaxies", parent_manifest(snakemake.input.parent, snakemake.output[0]))
