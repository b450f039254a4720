# Input functions and shared names of the rule files.
from pathlib import Path

import dataclasses
import os

from lensfinder.sky.bricks import coadd_path
from lensfinder.bench import BenchConfig
from lensfinder.inject import NOT_STAMP_SETTINGS, InjectConfig
from lensfinder.manifest import DatasetConfig, sky_split_pixels
from lensfinder.parent_negatives import ParentNegativesConfig
from lensfinder.sky.mock import MockSkyConfig, bricks_in_sweep
from lensfinder.sky.cutout_source import CutoutSourceConfig
from lensfinder.training.config import ConfigError, RunConfig


def canonical(value):
    """Dict params with keys sorted at every level. Snakemake fingerprints params by
    repr(), which follows dict order: without this, merely reordering keys in a user's
    YAML would rerun the rule."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


MOCK = canonical(config["sky"].get("mock"))


def mock_brick_files(wildcards):
    """Catalogues and coadds of the mock bricks that fall in one sweep file."""
    bricks = bricks_in_sweep(MOCK["bricks"], f"{wildcards.sweep}.fits")
    return {
        "catalogs": [f"{RESULTS}/mock_sky/catalog/{b[:3]}/{b}.parquet" for b in bricks],
        "coadds": [
            str(coadd_path(SKY.coadd_dir, b, kind, band))
            for b in bricks
            for kind in ("image", "invvar")
            for band in "grz"
        ],
    }



DATASETS = list(config["datasets"])


def workdir_relative(path):
    """A file shipped with lensfinder, as a path relative to the working directory: rule
    inputs must not be absolute, or moving the project would rerun everything after them."""
    return os.path.relpath(Path(workflow.basedir) / path)


KNOWN_LENSES = workdir_relative("resources/known_lenses.csv.gz")


def check_sky_splits(name, d):
    """On the mock sky the footprint is known before anything runs: a sky split with no
    HEALPix pixel inside it would reach phase 4a empty."""
    if not SKY.mock or d["split"] != "sky":
        return
    pixels = sky_split_pixels(MOCK["bricks"], MOCK.get("brick_size_pix", MockSkyConfig.brick_size_pix),
                              DatasetConfig.from_dict(name, d), config["seed"])
    empty = [s for s, n in pixels.items() if n == 0]
    if empty:
        raise ValueError(f"datasets.{name}: split(s) {empty} get no HEALPix pixel of the mock sky at healpix_nside "
                         f"{d.get('healpix_nside', DatasetConfig.healpix_nside)} (pixels per split: {pixels}); "
                         "raise healpix_nside or add sky.mock.bricks")


def check_lens_redshifts(name, d):
    """theta_e_model velocity_dispersion needs each lens's redshift, which phase 3 reads from
    the photo-z sweeps: without them every positive would be skipped after phase 4c starts."""
    model = DatasetConfig.from_dict(name, d).priors.theta_e_model
    if model == "velocity_dispersion" and not SKY.photoz_dir:
        raise ValueError(f"datasets.{name}.priors.theta_e_model is velocity_dispersion, which needs lens redshifts: "
                         "set sky.dr10.photoz_dir (DR10: $LEGACY_SURVEY_DIR/south/sweep/10.1-photo-z) or use "
                         "theta_e_model: uniform")


for _name, _d in config["datasets"].items():
    DatasetConfig.from_dict(_name, _d)  # split fractions, strategy, priors: checked where they live
    check_sky_splits(_name, _d)
    check_lens_redshifts(_name, _d)


def dataset_params(name):
    """The manifest's settings of one dataset (defaults filled, keys sorted)."""
    d = dict(config["datasets"][name])
    d.pop("inject", None)
    d.pop("parent_negatives", None)  # evaluation's: changing it must not redo the manifest
    return canonical(d)


def parent_negatives_params(name):
    """datasets.<name>.parent_negatives with the package defaults filled."""
    return canonical(dataclasses.asdict(ParentNegativesConfig.from_dict(config["datasets"][name].get("parent_negatives"))))


def parent_negative_stamps(dataset):
    """The parent-negative stamp shards a dataset's runs are also evaluated on (none unless
    datasets.<name>.parent_negatives.enabled)."""
    if not parent_negatives_params(dataset)["enabled"]:
        return []
    return gather.inject(f"{RESULTS}/datasets/{dataset}/parent_negatives/part-{{scatteritem}}.parquet")


def controls_per_positive(name):
    """Controls per positive of one dataset: (1 - pos_fraction) / pos_fraction."""
    f = DatasetConfig.from_dict(name, config["datasets"][name]).pos_fraction
    return (1 - f) / f


def stamp_compression(name):
    return InjectConfig.from_dict(inject_params(name)).stamp_compression


def past_false_positives_input(name):
    """A dataset's list of past false positives (a user file), or nothing."""
    path = config["datasets"][name].get("past_false_positives")
    return [path] if path else []


def inject_params(name):
    """Phase-4c settings of one dataset: the global inject section, overridden per dataset,
    less what cannot change a stamp (jobs read ``inject.batch`` from the config)."""
    merged = {k: v for k, v in config["inject"].items() if k not in NOT_STAMP_SETTINGS}
    merged.update(config["datasets"][name].get("inject", {}))
    return canonical(merged)


def lensable_criteria(name):
    """Phase 4c's recognisability criteria for a dataset with ``lensable_hosts`` (its manifest
    picks hosts by them), else None: other manifests do not rerun when the criteria change."""
    if not config["datasets"][name].get("lensable_hosts"):
        return None
    return inject_params(name).get("recognisable", {})


# Every impossible setting stops the workflow before any job, naming its key (issue 32): the
# mock sky's ranges and each dataset's phase-4c settings (bands, sizes) are read here once.
if SKY.mock:
    MockSkyConfig.from_dict(MOCK)
for _name in DATASETS:
    if set(config["datasets"][_name].get("inject", {})) & set(NOT_STAMP_SETTINGS):
        raise ValueError(f"datasets.{_name}.inject: {list(NOT_STAMP_SETTINGS)} are global settings (inject.*)")
    try:
        InjectConfig.for_job(inject_params(_name), config["inject"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"datasets.{_name} (inject settings): {exc}") from None

# Where phase 4c and candidates get pixels (sky.cutouts): local bricks or the cutout service.
CUTOUTS = CutoutSourceConfig.from_dict(config["sky"].get("cutouts"), RESULTS)

# The test bench (lensfinder.bench): its region is the manifests' business (no dataset may
# use it), its rows and priors the bench rules', its scoring settings bench_score's alone.
BENCH_CFG = BenchConfig.from_dict(config.get("bench"))
BENCH_REGION_PARAMS = canonical(BENCH_CFG.region.as_params())
BENCH_MANIFEST_PARAMS = canonical(BENCH_CFG.manifest_params())
BENCH_SCORING_PARAMS = canonical({k: getattr(BENCH_CFG, k) for k in ("sky_rates", "prevalence", "selection_fpr")})
BENCH_INJECT_PARAMS = canonical({k: v for k, v in config["inject"].items() if k not in NOT_STAMP_SETTINGS})
if BENCH_INJECT_PARAMS.get("psf", {}).get("kind") == "pixel" and not BENCH_INJECT_PARAMS["psf"].get("pixel_dir"):
    raise ValueError("the test bench cuts its stamps with inject.psf; kind pixel needs a pixel_dir for it "
                     "(PSFs from the cutout service are not wired to the bench yet)")


def _pixel_psf(dataset):
    """(kind is pixel, its local directory or "") of one dataset's inject.psf."""
    p = inject_params(dataset).get("psf", {})
    return p.get("kind") == "pixel", p.get("pixel_dir", "")


def psf_dir_input(dataset):
    """A local directory of survey PSF files is an input of the dataset's injection."""
    pixel, d = _pixel_psf(dataset)
    return [d] if pixel and d else []


def psf_service_params(dataset):
    """The cutout-service settings, when the dataset's pixel PSFs come from the service."""
    pixel, d = _pixel_psf(dataset)
    return dataclasses.replace(CUTOUTS, source="service").as_params() if pixel and not d else {}


def coadd_inputs():
    """Mock coadds are workflow products (so injection waits for them); real DR10 coadds
    are read in place and not tracked by the DAG; service cutouts need none."""
    if not SKY.mock or CUTOUTS.source == "service":
        return []
    return [
        str(coadd_path(SKY.coadd_dir, b, kind, band))
        for b in MOCK["bricks"]
        for kind in ("image", "invvar")
        for band in "grz"
    ]


# The gen2 study (workflow/rules/gen2.smk) exists when the config has a `compare` section;
# its ablations (gen3 with one gen2 setting on) are runs like any other.
# A run that names several `seeds` trains once per seed: the first seed under the run's
# own name, the k-th as <run>_rep<k> (lensfinder.training.config.seed_replicates). Without a
# `compare` section nothing of lensfinder.gen2 is imported.
from lensfinder.training.config import seed_replicates

COMPARE = config.get("compare")
_CONFIGURED_RUNS = dict(config.get("runs", {}))
COMPARE_ROWS = []
if COMPARE:
    from lensfinder.gen2.ablations import ablation_runs, comparison_rows

    _CONFIGURED_RUNS.update(ablation_runs(_CONFIGURED_RUNS, COMPARE))
    COMPARE_ROWS = comparison_rows(COMPARE)
# A `learning_curve` section adds the run trained on nested shares of its training split
# (<run>_lc<k>, lensfinder.learning_curve), each scored on the bench like every run.
LEARNING_CURVE = config.get("learning_curve")
if LEARNING_CURVE:
    from lensfinder.learning_curve import learning_curve_runs, point_name

    _CONFIGURED_RUNS.update(learning_curve_runs(_CONFIGURED_RUNS, LEARNING_CURVE))
RUN_CONFIGS, REPLICATES = seed_replicates(_CONFIGURED_RUNS, config["seed"])
RUNS = list(RUN_CONFIGS)


def resolve_run(name):
    """A run's RunConfig with every package default filled. Checked at workflow start: a bad
    key, value, metric or dataset name stops Snakemake before any job, naming the key."""
    d = RUN_CONFIGS[name]
    if d["dataset"] not in DATASETS:
        raise ValueError(f"runs.{name}.dataset: {d['dataset']!r} is not a dataset of this config "
                         f"(datasets: {', '.join(DATASETS)})")
    try:
        return RunConfig.from_dict(name, d["seed"], d)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


RESOLVED_RUNS = {name: resolve_run(name) for name in RUNS}


def run_params(name):
    """A run's settings (model, loader, train) with defaults filled, keys sorted: writing a
    default out in the YAML changes nothing, changing a package default reruns the run."""
    return canonical(RESOLVED_RUNS[name].sections())


def injected_stamps(dataset):
    """Phase 4c's stamp shards of one dataset (its scatter/gather outputs)."""
    return gather.inject(f"{RESULTS}/datasets/{dataset}/stamps/part-{{scatteritem}}.parquet")


def matched_after_injection(dataset):
    return config["datasets"][dataset].get("control") == "matched_after_injection"


def stamps_of(dataset):
    """The stamp shards a dataset trains and evaluates on: phase 4d's matched shards where
    controls are matched after injection, else phase 4c's."""
    if matched_after_injection(dataset):
        return gather.inject(f"{RESULTS}/datasets/{dataset}/matched/part-{{scatteritem}}.parquet")
    return injected_stamps(dataset)


def run_stamps(name):
    """Stamp shards of the dataset a run trains on."""
    return stamps_of(RUN_CONFIGS[name]["dataset"])


def dataset_stamps(wildcards):
    """Stamp shards of the dataset named by the ``dataset`` wildcard."""
    return stamps_of(wildcards.dataset)


wildcard_constraints:
    run="|".join(RUNS) or "(?!)",
    dataset="|".join(DATASETS),
    scatteritem=r"\d+-of-\d+",


def real_lens_params(real, *keys):
    """The settings of ``real`` (a RealLensesConfig) that one step uses, defaults filled;
    changing another reruns nothing."""
    return canonical({k: v for k, v in dataclasses.asdict(real).items() if k in keys})


def real_lens_background(real, dataset):
    """Inputs of the real-lens background: a user's random positions, or the parent sample
    and the scoring run's dataset manifest (whose galaxies are left out)."""
    if real.random_positions:
        return {"random_positions": real.random_positions}
    return {"parent": rules.parent_lrg.output.parent, "manifest": f"{RESULTS}/datasets/{dataset}/manifest.parquet"}
