"""Rule injection_figure: distributions of a dataset's positives (lensfinder.gallery)."""
import logging
import sys

from lensfinder.gallery import write_injection_figure

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
n = write_injection_figure(snakemake.input.stamps, snakemake.output.png,
                           title=f"{snakemake.wildcards.dataset}: injected positives")
logging.info("%d positives", n)
