"""Rule answers: the six questions answered from this run (see lensfinder.gen2.answers)."""
import logging
import sys

from lensfinder.gen2.answers import write_answers

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i, o = snakemake.input, snakemake.output
for a in write_answers(i.comparison, i.diag_ref, i.diag_base, i.user, o.html, o.json):
    logging.info("%s -> %s", a["question"], a["answer"])
