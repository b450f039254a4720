# Input functions and shared names of the rule files.
from pathlib import Path

from lensfinder.ablations import ablation_runs, comparison_rows
from lensfinder.sky.bricks import coadd_path
from lensfinder.sky.mock import bricks_in_sweep



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
KNOWN_LENSES = str(Path(workflow.basedir) / "resources/known_lenses.csv.gz")


def dataset_params(name):
    """The manifest's settings of one dataset (defaults filled, keys sorted)."""
    d = dict(config["datasets"][name])
    d.pop("inject", None)
    return canonical(d)


def inject_params(name):
    """Phase-4c settings of one dataset: the global inject section, overridden per dataset."""
    merged = {k: v for k, v in config["inject"].items() if k not in ("shards", "gallery_pairs")}
    merged.update(config["datasets"][name].get("inject", {}))
    return canonical(merged)


def coadd_inputs():
    """Mock coadds are workflow products (so injection waits for them); real DR10 coadds
    are read in place and not tracked by the DAG."""
    if not SKY.mock:
        return []
    return [
        str(coadd_path(SKY.coadd_dir, b, kind, band))
        for b in MOCK["bricks"]
        for kind in ("image", "invvar")
        for band in "grz"
    ]


# The comparison's ablations (gen3 with one gen2 setting on) are runs like any other.
RUN_CONFIGS = {**config.get("runs", {}), **ablation_runs(config.get("runs", {}), config.get("compare"))}
RUNS = list(RUN_CONFIGS)


def run_params(name):
    """A run's settings (model, loader, train), keys sorted."""
    d = dict(RUN_CONFIGS[name])
    for k in ("dataset", "nproc"):
        d.pop(k, None)
    return canonical(d)


def stamps_of(dataset):
    """Stamp shards of one dataset (phase 4c's scatter/gather outputs)."""
    return gather.inject(f"{RESULTS}/datasets/{dataset}/stamps/part-{{scatteritem}}.parquet")


def run_stamps(name):
    """Stamp shards of the dataset a run trains on."""
    return stamps_of(RUN_CONFIGS[name]["dataset"])


def dataset_stamps(wildcards):
    """Stamp shards of the dataset named by the ``dataset`` wildcard."""
    return stamps_of(wildcards.dataset)
