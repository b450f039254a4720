"""Rule mock_brick: render one mock DR10 brick (see lensfinder.sky.mock)."""
import logging
from pathlib import Path

from lensfinder.sky.mock import MockSkyConfig, write_brick

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
# coadd/<bri>/<brick>/file: the coadd root is three levels up from any coadd output.
coadd_dir = Path(snakemake.output.coadds[0]).parents[2]
cond = write_brick(MockSkyConfig.from_dict(snakemake.params.mock), snakemake.wildcards.brick,
                   coadd_dir, snakemake.output.catalog)
logging.info("brick %s conditions: %s", snakemake.wildcards.brick, cond)
