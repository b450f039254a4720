"""Rule run_config: a run's settings with defaults filled (see lensfinder.training.config)."""
import sys

from lensfinder.tables import write_json
from lensfinder.training.config import RunConfig, run_config_record

sys.stderr = open(snakemake.log[0], "w")  # tracebacks land in the rule's log too
p = snakemake.params
cfg = RunConfig.from_dict(snakemake.wildcards.run, p.seed, p.run)
write_json(run_config_record(cfg, p.dataset, p.nproc, p.stamps), snakemake.output[0])
