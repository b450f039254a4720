"""Rule manifest: phase-4a injection manifest of one dataset (see lensfinder.manifest)."""
import logging
import sys

from lensfinder.bench_region import BenchRegion
from lensfinder.detectability import Criteria
from lensfinder.manifest import DatasetConfig, write_manifest

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
past = snakemake.input.past_false_positives  # a one-file list, or empty
past = [past] if isinstance(past, str) else list(past)
cfg = DatasetConfig.from_dict(snakemake.wildcards.dataset, snakemake.params.dataset)
audit = write_manifest(snakemake.input.parent, cfg, snakemake.params.seed, snakemake.input.known_lenses,
                       snakemake.output.manifest, snakemake.output.audit,
                       past[0] if past else None, BenchRegion.from_dict(snakemake.params.bench_region),
                       None if snakemake.params.lensable is None else Criteria.from_dict(snakemake.params.lensable))
logging.info("%s: %d rows, leaky=%s, %d vetoed near known lenses", cfg.name, audit["n_rows"], audit["leaky"],
             audit["n_vetoed_known_lens"])
