"""Rule mock_brick: render one mock DR10 brick (see lensfinder.sky.mock)."""
import logging
import sys
from pathlib import Path

from lensfinder.sky.mock import MockSkyConfig, write_brick

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
# coadd/<bri>/<brick>/file: the coadd root is three levels up from any coadd output.
coadd_dir = Path(snakemake.output.coadds[0]).parents[2]
cond = write_brick(MockSkyConfig.from_dict(snakemake.params.mock), snakemake.wildcards.brick,
                   coadd_dir, snakemake.output.catalog)
logging.info("brick %s conditions: %s", snakemake.wildcards.brick, cond)
