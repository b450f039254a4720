"""Extra test negatives from the parent sample: the test region's galaxies that training,
validation and the test split never use."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lensfinder.manifest import DatasetConfig, build_manifest, healpix_of, split_of_units
from lensfinder.parent_negatives import ParentNegativesConfig, select_parent_negatives, write_parent_negatives
from lensfinder.tables import write_parquet
from test_manifest import NO_LENSES, fake_parent

SEED = 3


def dataset(split: str, **kw) -> DatasetConfig:
    return DatasetConfig.from_dict("ds", {"control": "unpaired", "split": split, "healpix_nside": 256, **kw})


def test_sky_split_negatives_are_the_test_regions_unused_galaxies():
    parent = fake_parent(2000)
    ds = dataset("sky", max_galaxies=600)
    m, _ = build_manifest(parent, ds, SEED, NO_LENSES)
    test_galaxies = m.loc[m["split"] == "test", "galaxy_id"].to_numpy()[::2]  # as if 4d kept half
    rows, audit = select_parent_negatives(parent, m, test_galaxies, ds, SEED, NO_LENSES, ParentNegativesConfig(True))
    chosen = parent.iloc[rows]
    pix = healpix_of(chosen["ra"], chosen["dec"], 256)
    assert (split_of_units(pix, ds, SEED) == "test").all()  # the test split's own sky
    assert not np.isin(chosen["galaxy_id"], m.loc[m["split"] != "test", "galaxy_id"]).any()
    assert not np.isin(chosen["galaxy_id"], test_galaxies).any()
    # by hand: every galaxy of the test pixels that is not in a test stamp
    region = split_of_units(healpix_of(parent["ra"], parent["dec"], 256), ds, SEED) == "test"
    expected = np.flatnonzero(region & ~np.isin(parent["galaxy_id"], test_galaxies))
    assert rows.tolist() == expected.tolist()
    # the test pool's galaxies that the (imagined) phase 4d left out come back as negatives
    assert np.isin(chosen["galaxy_id"], m.loc[m["split"] == "test", "galaxy_id"]).any()
    assert audit["n_in_test_region"] == region.sum() and audit["n_selected"] == len(rows)
    assert audit["n_used_by_train_or_val"] == 0  # sky split: no train/val galaxy lies in test pixels
    assert audit["n_in_test_stamps"] == len(test_galaxies)


def test_row_split_takes_any_galaxy_no_train_or_val_row_uses_and_vetoes_known_lenses():
    parent = fake_parent(1000)
    ds = dataset("row", max_galaxies=300)
    m, _ = build_manifest(parent, ds, SEED, NO_LENSES)
    on_lens = np.flatnonzero(~np.isin(parent["galaxy_id"], m["galaxy_id"]))[0]
    lens = parent.iloc[[on_lens]][["ra", "dec"]]  # a catalogued lens on an unused galaxy
    rows, audit = select_parent_negatives(parent, m, np.array([], np.int64), ds, SEED, lens, ParentNegativesConfig(True))
    trained = np.isin(parent["galaxy_id"], m.loc[m["split"] != "test", "galaxy_id"])
    assert audit["n_in_test_region"] == 1000 and audit["n_used_by_train_or_val"] == trained.sum()
    assert audit["n_vetoed_known_lens"] == 1 and on_lens not in rows
    assert rows.tolist() == [i for i in np.flatnonzero(~trained) if i != on_lens]


def test_the_cap_is_a_hash_order_independent_of_row_order():
    parent = fake_parent(1500)
    ds = dataset("row", max_galaxies=100)
    m, _ = build_manifest(parent, ds, SEED, NO_LENSES)
    cap = ParentNegativesConfig(True, 250)
    rows, audit = select_parent_negatives(parent, m, np.array([], np.int64), ds, SEED, NO_LENSES, cap)
    shuffled = parent.sample(frac=1.0, random_state=1).reset_index(drop=True)
    rows2, _ = select_parent_negatives(shuffled, m, np.array([], np.int64), ds, SEED, NO_LENSES, cap)
    assert len(rows) == 250 == audit["n_selected"] and audit["n_available"] > 250
    assert set(parent["galaxy_id"].iloc[rows]) == set(shuffled["galaxy_id"].iloc[rows2])
    other, _ = select_parent_negatives(parent, m, np.array([], np.int64), ds, SEED + 1, NO_LENSES, cap)
    assert set(other) != set(rows)  # a new seed draws another subset


def test_max_galaxies_below_one_is_refused():
    with pytest.raises(ValueError, match="max_galaxies"):
        ParentNegativesConfig.from_dict({"enabled": True, "max_galaxies": 0})


def test_the_written_manifest_is_label_0_test_rows_sorted_by_brick(tmp_path):
    parent = fake_parent(800).assign(population="ordinary")
    ds = dataset("sky")
    m, _ = build_manifest(parent, ds, SEED, NO_LENSES)
    write_parquet(parent_table(parent), tmp_path / "parent.parquet")
    write_parquet(parent_table(m[["galaxy_id", "split"]]), tmp_path / "manifest.parquet")
    stamps = tmp_path / "stamps.parquet"
    write_parquet(parent_table(m.loc[m["split"] == "test", ["galaxy_id", "split"]].iloc[::2]), stamps)  # 4d kept half
    pd.DataFrame({"ra": [], "dec": []}).to_csv(tmp_path / "known.csv", index=False)
    audit = write_parent_negatives(tmp_path / "parent.parquet", tmp_path / "manifest.parquet", [stamps], ds, SEED,
                                   tmp_path / "known.csv", ParentNegativesConfig(True), tmp_path / "out.parquet",
                                   tmp_path / "audit.json")
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert len(out) == audit["n_selected"] > 0 and audit["populations"] == {"ordinary": len(out)}
    assert (out["label"] == 0).all() and (out["split"] == "test").all()
    assert (out["sample_id"] == out["galaxy_id"] * 2).all()
    assert list(zip(out["brickname"], out["sample_id"])) == sorted(zip(out["brickname"], out["sample_id"]))


def parent_table(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
