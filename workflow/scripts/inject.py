"""Rule inject: phase-4c stamps of one manifest shard (see lensfinder.inject)."""
import logging
import sys

from lensfinder.inject import InjectConfig, inject_shard
from lensfinder.manifest import DatasetConfig
from lensfinder.population import Population
from lensfinder.sky.cutout_source import CutoutSourceConfig, open_cutout_source
from lensfinder.sky.psf_images import open_psf_images

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
# politeness settings (rate, retries, timeouts, cache) come from the config, not params: they
# cannot change a stamp, so changing them must not rerun the job (CutoutSourceConfig.for_job)
cutout_section, results_dir = snakemake.config["sky"].get("cutouts"), snakemake.config["results_dir"]
source = open_cutout_source(CutoutSourceConfig.for_job(snakemake.params.cutouts, cutout_section, results_dir),
                            snakemake.params.coadd_dir)
index, n_shards = (int(x) for x in snakemake.wildcards.scatteritem.split("-of-"))  # "1-of-4"
dataset = DatasetConfig.from_dict(snakemake.wildcards.dataset, snakemake.params.dataset)
cfg = InjectConfig.for_job(snakemake.params.inject, snakemake.config["inject"])  # batch: not a param
service = snakemake.params.psf_service
psf_images = open_psf_images(cfg.psf, CutoutSourceConfig.for_job(service, cutout_section, results_dir) if service else None)
report = inject_shard(snakemake.input.manifest, source, index - 1, n_shards, snakemake.output.stamps,
                      snakemake.output.report, Population(dataset.priors, snakemake.params.seed, dataset.name),
                      cfg, psf_images)
logging.info("shard %d/%d: %d written, skipped %s", index, n_shards, report["n_written"], report["skipped"])
