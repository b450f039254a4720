# lensfinder: DR10 strong-lens finding, phases 3 -> 5. Thin on purpose: config + schema
# validation, the rule files, and the target rules. All logic lives in src/lensfinder.
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The Snakefile and every rule script import this checkout's package: `make` installs it
# editable into .venv, and jobs also get its src/ on PYTHONPATH, so a job in the conda
# environment (envs/lensfinder.yaml, --sdm conda) or on a cluster node runs the same code.
from lensfinder.environment import export_pythonpath
from lensfinder.sky.source import resolve_mock_bricks, sky_layout

export_pythonpath(str(Path(workflow.basedir) / "src"))


# With no --configfile, the mock-sky demo (config/config.yaml). A config file you pass is
# the whole configuration (config/dr10.yaml is complete); what it leaves out takes the
# package's defaults, never the demo's. Stack `--configfile config/config.yaml yours.yaml`
# to change a few demo settings. --config KEY=VALUE overrides apply either way.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config/config.yaml"


validate(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
# A mock sky given as a box of the brick grid becomes its list of bricks before any rule reads it.
resolve_mock_bricks(config["sky"])

report: "workflow/report/workflow.rst"


RESULTS = config["results_dir"]
TORCH_THREADS = config["torch_threads"]  # threads of each training / scoring job
LOGS = f"{RESULTS}/logs"  # per-job logs and benchmark TSVs live with the results they explain
BENCH = f"{RESULTS}/benchmarks"
SKY = sky_layout(config["sky"], RESULTS)


include: "workflow/rules/common.smk"
include: "workflow/rules/sky.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/inject.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/candidates.smk"
include: "workflow/rules/real_lenses.smk"


if COMPARE:

    include: "workflow/rules/gen2.smk"

else:
    GEN2_REPORT_INPUTS = []


include: "workflow/rules/report.smk"


rule all:
    """Default target: stamps of every dataset and the gen3 run trained and evaluated."""
    default_target: True
    input:
        rules.stamps.input,
        expand(rules.evaluate.output, run=[r for r in RUNS if r == "gen3"]),
        expand(rules.bench_score.output, run=[r for r in RUNS if r == "gen3"]),
