"""A trained finder on lenses whose sources are unlike those it trained on (issue 31, item 3).

Real sources are clumpy and varied; a finder tuned to one source model can lose recall on
another. This re-draws the test bench's lens rows with other source priors -- the same host
galaxies, the same lens model, only the source population changed (smooth, clumpier, more
compact, more extended, brighter) --, injects them as phase 4c does, scores them with the
run's best checkpoint, and reads each variant's TPR against the run's own bench sky rows
(weighted to sky prevalence, :mod:`lensfinder.bench_metrics`), so every variant is compared
at the same thresholds. The variant ``as_bench`` uses the bench's own priors: it rebuilds
the bench's lens rows exactly and must reproduce the run's bench numbers.

Several runs (``--run a b``) are scored on the same injected lenses, each at its own sky
thresholds. ``--val-datasets`` also scores every run on those datasets' validation splits
(AUC): the data a choice between runs may be made on, the bench being the test.

Simulation only (the built-in mock sky). Prints JSON (and writes it with ``--out``).
Usage: python benchmarks/source_variety.py --configfile config/finder.yaml [more.yaml ...]
                                           --run finder [finder_mix ...] [--variants smooth compact]
                                           [--val-datasets finder finder_mix] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
import pyarrow.parquet as pq
import yaml

from lensfinder.bench import NAME, BenchConfig, build_bench_manifest
from lensfinder.bench_metrics import SELECTION_QUANTITIES, bench_metrics
from lensfinder.bench_score import read_bench_rows
from lensfinder.gen2.ablations import deep_merge
from lensfinder.inject import NOT_STAMP_SETTINGS, InjectConfig, inject_shard
from lensfinder.manifest import manifest_table
from lensfinder.population import Population, Priors
from lensfinder.sky.cutout_source import LocalCoadds
from lensfinder.sky.source import resolve_mock_bricks, sky_layout
from lensfinder.tables import write_parquet
from lensfinder.training.inference import SelectedModel

REPO = Path(__file__).resolve().parents[1]

# Each variant changes the bench's source priors (lensfinder.population.Priors) and nothing
# else. The bench's own (config/dr10.yaml's): r 22-25 from the counts, Sersic n 0.5-2.5,
# R_e 0.1-0.6", 0-3 knots of 5-15% of the light each.
VARIANTS = {
    "as_bench": {},
    "smooth": {"knots_max": 0},                                          # no star-forming knots
    "clumpier": {"knots_max": 3, "knot_flux": [0.15, 0.30]},             # up to 90% of the light in knots
    "compact": {"source_re": [0.05, 0.2]},                               # small sources: thin arcs
    "extended": {"source_re": [0.6, 1.2]},                               # large, low surface brightness
    "steep": {"source_n": [2.5, 4.0]},                                   # cuspy, de Vaucouleurs-like
    "bright": {"source_mag_r": [20.0, 23.0], "source_mag_model": "uniform"},  # the demo's brighter arcs
}


def load_config(paths: list[str]) -> dict:
    """The configuration the workflow sees for these files (later files override earlier)."""
    config: dict = {}
    for p in paths:
        config = deep_merge(config, yaml.safe_load(Path(p).read_text()))
    resolve_mock_bricks(config["sky"])
    return config


def variant_lenses(parent: pd.DataFrame, bench: BenchConfig, seed: int, known: pd.DataFrame, change: dict):
    """The bench's lens rows (its hosts, in its order) with sources drawn from the bench's
    priors changed by ``change``; and those priors."""
    priors = Priors.from_dict(deep_merge(asdict(bench.priors), change))
    m, _ = build_bench_manifest(parent, replace(bench, priors=priors, unlensed_controls=0), seed, known)
    return m.loc[m["bench_kind"] == 1].reset_index(drop=True), priors


def variant_metrics(model: SelectedModel, sky: pd.DataFrame, stamps: Path, bench: BenchConfig) -> dict:
    """One run's sky-prevalence metrics on a variant's lens stamps, at the thresholds of the
    run's own bench sky rows ``sky``."""
    sid, _, logits = model.score([str(stamps)], "test")
    rows = read_bench_rows([stamps])
    if not np.array_equal(rows["sample_id"].to_numpy(), sid):
        raise RuntimeError(f"{stamps}: scored rows differ from the rows read")
    kind = np.concatenate([np.zeros(len(sky), np.int8), np.ones(len(sid), np.int8)])
    m = bench_metrics(np.concatenate([np.zeros(len(sky)), np.ones(len(sid))]),
                      np.concatenate([sky["logit"].to_numpy(float), logits]), kind,
                      np.concatenate([sky["population"].to_numpy(object), rows["population"].to_numpy(object)]),
                      {q: rows[q].to_numpy(float) for q in SELECTION_QUANTITIES},
                      bench.sky_rates, bench.prevalence, bench.selection_fpr)
    return m["sky_prevalence"]


def validation_auc(model: SelectedModel, config: dict, results: Path, dataset: str) -> dict:
    """AUC of a run on a dataset's validation split (its stamp shards, as the workflow names
    them)."""
    n = int(config["inject"]["shards"])
    paths = [str(results / "datasets" / dataset / "stamps" / f"part-{i}-of-{n}.parquet") for i in range(1, n + 1)]
    _, labels, logits = model.score(paths, "val")
    return {"n_val": int(len(labels)), "n_val_lenses": int(labels.sum()), "auc": float(roc_auc_score(labels, logits))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="+", required=True)
    ap.add_argument("--run", nargs="+", required=True, help="runs whose best checkpoints score the lenses")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--val-datasets", nargs="*", default=[], help="also score each run on these validation splits")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    config = load_config(args.configfile)
    results, seed = Path(config["results_dir"]), int(config["seed"])
    bench = BenchConfig.from_dict(config.get("bench"))
    inject = InjectConfig.from_dict({k: v for k, v in config.get("inject", {}).items() if k not in NOT_STAMP_SETTINGS})
    coadds = LocalCoadds(sky_layout(config["sky"], str(results)).coadd_dir)
    parent = pd.read_parquet(results / "phase3/parent_lrg.parquet")
    known = pd.read_csv(REPO / "resources/known_lenses.csv.gz", usecols=["ra", "dec"])
    models, skies = {}, {}
    out = {"benchmark": "source_variety", "simulation": True, "results_dir": str(results), "runs": {}, "variants": {}}
    for run in args.run:
        run_dir = results / "runs" / run
        models[run] = SelectedModel(run_dir / "run_config.json", run_dir / "best.pt")
        sky = pq.read_table(run_dir / "bench_scores.parquet").to_pandas()
        skies[run] = sky.loc[sky["bench_kind"] == 0]  # the run's own sky rows: the same thresholds for every variant
        out["runs"][run] = {"checkpoint_sha256": models[run].sha256, "n_sky_rows": int(len(skies[run])),
                            "validation": {d: validation_auc(models[run], config, results, d) for d in args.val_datasets}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            lenses, priors = variant_lenses(parent, bench, seed, known, VARIANTS[name])
            manifest, stamps = Path(tmp) / f"{name}.parquet", Path(tmp) / f"{name}_stamps.parquet"
            write_parquet(manifest_table(lenses), manifest)
            report = inject_shard(manifest, coadds, 0, 1, stamps, Path(tmp) / f"{name}.json",
                                  Population(priors, seed, NAME), inject)
            arc_snr = pq.read_table(stamps, columns=["arc_snr"])["arc_snr"].to_numpy()
            out["variants"][name] = {"priors_changed": VARIANTS[name], "lens_hosts": int(len(lenses)),
                                     "recognisable_lenses": report["n_positives_written"],
                                     "not_recognisable": report["skipped"]["not_recognisable"],
                                     "median_arc_snr": float(np.median(arc_snr)),
                                     "by_run": {run: variant_metrics(models[run], skies[run], stamps, bench)
                                                for run in args.run}}
    text = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
