"""Rule bench_stamps: phase-4c stamps of one shard of the bench manifest (see lensfinder.bench)."""
import logging
import sys

from lensfinder.bench import NAME, BenchConfig
from lensfinder.inject import InjectConfig, inject_shard
from lensfinder.population import Population
from lensfinder.sky.cutout_source import CutoutSourceConfig, open_cutout_source
from lensfinder.sky.psf_images import open_psf_images

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
p = snakemake.params
cutouts = CutoutSourceConfig.for_job(p.cutouts, snakemake.config["sky"].get("cutouts"), snakemake.config["results_dir"])
source = open_cutout_source(cutouts, p.coadd_dir)
index, n_shards = (int(x) for x in snakemake.wildcards.scatteritem.split("-of-"))  # "1-of-4"
cfg = InjectConfig.for_job(p.inject, snakemake.config["inject"])  # batch: not a param
report = inject_shard(snakemake.input.manifest, source, index - 1, n_shards, snakemake.output.stamps,
                      snakemake.output.report, Population(BenchConfig.from_dict(p.bench).priors, p.seed, NAME),
                      cfg, open_psf_images(cfg.psf, None))
logging.info("shard %d/%d: %d written, skipped %s", index, n_shards, report["n_written"], report["skipped"])
