"""Rule stamps_report: sum a dataset's shard reports (see lensfinder.inject)."""
import json
import logging
import sys
from pathlib import Path

from lensfinder.inject import empty_shard_note, gather_reports

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
total = gather_reports([json.loads(Path(p).read_text()) for p in snakemake.input.reports], snakemake.output.report)
logging.info("%s: %d stamps written, %d skipped", snakemake.wildcards.dataset, total["n_written"], total["n_skipped"])
if note := empty_shard_note(total):
    logging.warning(note)
    print(f"{snakemake.wildcards.dataset}: {note}", file=sys.__stderr__, flush=True)  # on the console too
