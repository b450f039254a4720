"""Rule parent_negatives: a dataset's unused test-region parent galaxies as a label-0
manifest (see lensfinder.parent_negatives)."""
import logging
import sys

from lensfinder.bench_region import BenchRegion
from lensfinder.manifest import DatasetConfig
from lensfinder.parent_negatives import ParentNegativesConfig, write_parent_negatives

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i, p = snakemake.input, snakemake.params
audit = write_parent_negatives(i.parent, i.manifest, i.stamps, DatasetConfig.from_dict(snakemake.wildcards.dataset, p.dataset),
                               p.seed, i.known_lenses, ParentNegativesConfig.from_dict(p.parent_negatives),
                               snakemake.output.manifest, snakemake.output.audit,
                               BenchRegion.from_dict(p.bench_region))
logging.info("%d parent negatives of %d in the test region", audit["n_selected"], audit["n_in_test_region"])
