"""Rules candidate_stamps and parent_negative_stamps: cutouts of parent galaxies with
nothing injected, one shard of a label-0 manifest (see lensfinder.inject)."""
import logging
import sys

from lensfinder.inject import InjectConfig, inject_shard
from lensfinder.sky.cutout_source import CutoutSourceConfig, open_cutout_source

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
# politeness settings (rate, retries, timeouts, cache) come from the config, not params: they
# cannot change a stamp, so changing them must not rerun the job (CutoutSourceConfig.for_job)
cutout_section, results_dir = snakemake.config["sky"].get("cutouts"), snakemake.config["results_dir"]
source = open_cutout_source(CutoutSourceConfig.for_job(snakemake.params.cutouts, cutout_section, results_dir),
                            snakemake.params.coadd_dir)
index, n_shards = (int(x) for x in snakemake.wildcards.get("scatteritem", "1-of-1").split("-of-"))  # "1-of-4"
report = inject_shard(snakemake.input.manifest, source, index - 1, n_shards, snakemake.output.stamps,
                      snakemake.output.report, None, InjectConfig.for_job(snakemake.params.inject, snakemake.config["inject"]))  # no positives
logging.info("shard %d/%d: %d written, skipped %s", index, n_shards, report["n_written"], report["skipped"])
