"""Evaluation negatives from the parent sample: the un-injected parent LRGs of a dataset's
test region that its training and validation never saw.

A test split of a few hundred controls cannot resolve FPR 1e-3, let alone 1e-4: the
smallest non-zero FPR it measures is 1 / n_negatives. A lens search meets ~10^4-10^6
galaxies per real lens, so low-FPR numbers need tens of thousands of negatives (HOLISMOKES
XI, Canameras et al. 2024, A&A 692, A72, score 70,910 real non-lenses). The parent sample
has them for free: every parent galaxy of the test region is a negative the run never
trained on (on the mock sky a negative for certain; on real data apart from the ~1e-4 that
are uncatalogued lenses, which bias low-FPR TPR down, never up).

Which galaxies (:func:`select_parent_negatives`):

* ``split: sky``: those whose HEALPix pixel the dataset's split puts in test (the same hash
  as phase 4a's, so the region is the test split's own sky);
* ``split: row`` / ``galaxy``: these schemes have no test region; every parent galaxy that
  no training or validation row of the manifest uses;
* never a galaxy already in the dataset's test stamps (a positive's host or a control) nor
  one within 5" of a catalogued lens (phase 4a's veto), nor one of the test bench's region
  (:mod:`lensfinder.bench_region`);
* at most ``max_galaxies``, in per-galaxy hash order (independent of row order).

They become a label-0 manifest (split ``test``) that phase 4c cuts like any other, with
the parent sample's population labels (the mock's look-alikes keep their names; real data:
``unlabelled``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder import seeding
from lensfinder.bench_region import BenchRegion, in_bench
from lensfinder.manifest import (DatasetConfig, healpix_of, known_lens_veto, negatives_manifest, population_counts,
                                 split_of_units)
from lensfinder.sky.crossmatch import MATCH_RADIUS_ARCSEC
from lensfinder.sky.false_positives import UNLABELLED
from lensfinder.stamps import read_columns
from lensfinder.tables import write_json, write_parquet

SPLIT = "test"


@dataclass(frozen=True)
class ParentNegativesConfig:
    """``datasets.<name>.parent_negatives``: add the test region's unused parent galaxies
    to every evaluation of the dataset's runs."""

    enabled: bool = False
    max_galaxies: int | None = None  # None: all of them

    @classmethod
    def from_dict(cls, d: dict | None) -> "ParentNegativesConfig":
        cfg = cls(**(d or {}))
        if cfg.max_galaxies is not None and cfg.max_galaxies < 1:
            raise ValueError(f"parent_negatives.max_galaxies must be >= 1 or null, not {cfg.max_galaxies}")
        return cfg


def select_parent_negatives(parent: pd.DataFrame, manifest: pd.DataFrame, test_galaxies: np.ndarray,
                            dataset: DatasetConfig, seed: int, known: pd.DataFrame,
                            cfg: ParentNegativesConfig, bench: BenchRegion | None = None) -> tuple[np.ndarray, dict]:
    """(row positions in ``parent`` of the chosen galaxies, sorted; audit counts).

    ``parent``: the phase-3 parent sample (galaxy_id, ra, dec in degrees);
    ``manifest``: the dataset's phase-4a manifest (galaxy_id, split);
    ``test_galaxies``: galaxy ids of the dataset's final test stamps;
    ``known``: catalogued lenses (ra, dec in degrees)."""
    gid = parent["galaxy_id"].to_numpy()
    if dataset.split == "sky":
        region = split_of_units(healpix_of(parent["ra"].to_numpy(), parent["dec"].to_numpy(),
                                           dataset.healpix_nside), dataset, seed) == SPLIT
    else:
        region = np.ones(len(parent), bool)
    trained = manifest.loc[manifest["split"] != SPLIT, "galaxy_id"].to_numpy()
    used = np.isin(gid, trained)
    in_test = np.isin(gid, test_galaxies)
    vetoed = known_lens_veto(parent["ra"].to_numpy(), parent["dec"].to_numpy(), known)
    benched = in_bench(parent["ra"].to_numpy(), parent["dec"].to_numpy(), bench, seed)
    keep = region & ~used & ~in_test & ~vetoed & ~benched
    idx = np.flatnonzero(keep)
    order = np.argsort(seeding.uniform(seeding.row_keys(seed, dataset.name, "parent-negatives", gid[idx])),
                       kind="stable")
    capped = idx[order[: cfg.max_galaxies]] if cfg.max_galaxies is not None else idx
    audit = {
        "dataset": dataset.name, "split_scheme": dataset.split, "n_parent": int(len(parent)),
        "n_in_test_region": int(region.sum()),
        "n_used_by_train_or_val": int((region & used).sum()),
        "n_in_test_stamps": int((region & ~used & in_test).sum()),
        "n_vetoed_known_lens": int((region & ~used & ~in_test & vetoed).sum()),
        "veto_radius_arcsec": MATCH_RADIUS_ARCSEC,
        "n_in_bench_region": int((region & ~used & ~in_test & ~vetoed & benched).sum()),
        "n_available": int(len(idx)), "max_galaxies": cfg.max_galaxies, "n_selected": int(len(capped)),
    }
    return np.sort(capped), audit


def write_parent_negatives(parent_path, manifest_path, stamp_paths, dataset: DatasetConfig, seed: int,
                           known_lenses_path, cfg: ParentNegativesConfig, out_manifest, out_audit,
                           bench: BenchRegion | None = None) -> dict:
    """Rule body: the parent-negative manifest (label 0, split test) of one dataset and its
    audit (counts at each cut, populations). Returns the audit."""
    parent = pq.read_table(parent_path)
    cols = parent.select(["galaxy_id", "ra", "dec"]).to_pandas()
    manifest = pq.read_table(manifest_path, columns=["galaxy_id", "split"]).to_pandas()
    st = read_columns(sorted(str(p) for p in stamp_paths), ["galaxy_id", "split"]).to_pandas()
    test_galaxies = st.loc[st["split"] == SPLIT, "galaxy_id"].to_numpy()
    known = pd.read_csv(known_lenses_path, usecols=["ra", "dec"])
    rows, audit = select_parent_negatives(cols, manifest, test_galaxies, dataset, seed, known, cfg, bench)
    chosen = parent.take(pa.array(rows))
    if "population" not in chosen.column_names:
        chosen = chosen.append_column("population", pa.array([UNLABELLED] * chosen.num_rows, pa.large_string()))
    t = negatives_manifest(chosen, SPLIT)
    audit["populations"] = population_counts(t.select(["label", "population"]).to_pandas()).get("controls", {})
    write_parquet(t, out_manifest)
    write_json(audit, out_audit)
    return audit
