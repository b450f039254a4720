"""Rule candidate_stamps: cutouts of the parent sample, nothing injected (see lensfinder.inject)."""
import logging
import sys

from lensfinder.inject import InjectConfig, inject_shard
from lensfinder.sky.cutout_source import CutoutSourceConfig, open_cutout_source

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
source = open_cutout_source(CutoutSourceConfig.from_dict(snakemake.params.cutouts), snakemake.params.coadd_dir)
report = inject_shard(snakemake.input.manifest, source, 0, 1, snakemake.output.stamps, snakemake.output.report,
                      None, InjectConfig.from_dict(snakemake.params.inject))  # no positives: no lens population
logging.info("%d written, skipped %s", report["n_written"], report["skipped"])
