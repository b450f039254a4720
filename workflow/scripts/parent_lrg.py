"""Rule parent_lrg: gather per-sweep LRG selections into parent_lrg.parquet."""
import json
import logging
import sys
from pathlib import Path

from lensfinder.select import gather_parent

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
summaries = [json.loads(Path(p).read_text()) for p in snakemake.input.summaries]
total = gather_parent(snakemake.input.parts, summaries, snakemake.output.parent, snakemake.output.summary)
logging.info("parent sample: %d LRGs from %d sweep rows", total["n_selected"], total["n_rows"])
