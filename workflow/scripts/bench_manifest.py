"""Rule bench_manifest: the test bench's rows (see lensfinder.bench)."""
import logging
import sys

from lensfinder.bench import BenchConfig, write_bench_manifest

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
audit = write_bench_manifest(snakemake.input.parent, BenchConfig.from_dict(snakemake.params.bench), snakemake.params.seed,
                             snakemake.input.known_lenses, snakemake.output.manifest, snakemake.output.audit)
logging.info("bench rows %s from %d LRGs of the region", audit["rows"], audit["n_in_region"])
