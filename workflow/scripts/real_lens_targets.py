"""Rule real_lens_targets: catalogued lenses and a random background (see lensfinder.real_lenses)."""
import logging
import sys

from lensfinder.real_lenses import RealLensesConfig, write_targets

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
i, p = snakemake.input, snakemake.params
audit = write_targets(i.lenses, i.get("parent"), i.get("manifest"), i.get("random_positions"),
                      RealLensesConfig.from_dict(p.real_lenses), p.seed, snakemake.output.manifest, snakemake.output.audit)
logging.info("targets: %s", audit)
