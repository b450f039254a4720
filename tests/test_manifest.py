import hashlib

import numpy as np
import pandas as pd
import pytest

from lensfinder.manifest import (
    MANIFEST_PARAMS, DatasetConfig, _matched_controls, _standardised_mean_differences, build_manifest,
    write_manifest,
)
from lensfinder.seeding import row_keys
from lensfinder.sky.shapes import ellipticity

NO_LENSES = pd.DataFrame({"ra": [], "dec": []})


def fake_parent(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.5, 1.0, n)
    e1, e2 = ellipticity(q, rng.uniform(0, np.pi, n))
    bricks = np.array(["1501p020", "1502p020", "1551p020", "1601p021"])
    return pd.DataFrame({
        "galaxy_id": (np.int64(10000) << 42) | (np.int64(1) << 22) | np.arange(n, dtype=np.int64),
        "brickname": bricks[rng.integers(0, 4, n)], "ra": rng.uniform(150, 152, n), "dec": rng.uniform(1, 3, n),
        "type": "DEV", "mag_r": rng.uniform(19, 22, n), "shape_r": rng.uniform(0.5, 2, n),
        "shape_e1": e1.astype(np.float32), "shape_e2": e2.astype(np.float32),
        **{f"psfsize_{b}": rng.uniform(1.0, 1.6, n) for b in "grz"},
        **{f"psfdepth_{b}": rng.uniform(50, 1000, n) for b in "grz"},
        **{f"mw_transmission_{b}": rng.uniform(0.85, 1.0, n) for b in "grz"},
        **{f"nobs_{b}": rng.integers(1, 6, n).astype(np.int16) for b in "grz"},
    })


def cfg(**kw) -> DatasetConfig:
    return DatasetConfig.from_dict(kw.pop("name", "ds"), kw)


def test_paired_controls_are_the_same_galaxies_and_row_split_leaks():
    m, audit = build_manifest(fake_parent(), cfg(control="paired", split="row"), 1, NO_LENSES)
    assert len(m) == 1200 and (m.label == 1).sum() == 600
    twins = m.set_index("sample_id")
    assert (twins.loc[m.twin_sample_id, "galaxy_id"].to_numpy() == m.galaxy_id.to_numpy()).all()
    assert (twins.loc[m.twin_sample_id, "label"].to_numpy() != m.label.to_numpy()).all()
    assert audit["leaky"] and audit["paired_twins_across_splits"] > 0
    assert m.loc[m.label == 0, list(MANIFEST_PARAMS)].isna().all().all()
    assert m.loc[m.label == 1, list(MANIFEST_PARAMS)].notna().all().all()


@pytest.mark.parametrize("split", ["galaxy", "sky"])
def test_galaxy_and_sky_splits_do_not_leak(split):
    m, audit = build_manifest(fake_parent(), cfg(control="paired", split=split, healpix_nside=256), 1, NO_LENSES)
    assert audit["galaxies_in_multiple_splits"] == 0 and audit["paired_twins_across_splits"] == 0
    assert not audit["leaky"]
    if split == "sky":
        assert audit["healpix_pixels_in_multiple_splits"] == 0
    assert set(m.split) == {"train", "val", "test"}


def test_unpaired_uses_disjoint_galaxies_with_configured_balance():
    m, audit = build_manifest(fake_parent(), cfg(control="unpaired", split="galaxy", pos_fraction=0.3), 1, NO_LENSES)
    assert m.galaxy_id.is_unique
    assert abs((m.label == 1).mean() - 0.3) < 0.01
    assert (m.twin_sample_id == -1).all()


def test_matched_controls_follow_the_positives_distribution():
    rng = np.random.default_rng(3)
    pos = pd.DataFrame({"mag_r": rng.normal(20, 0.5, 400), "psfsize_r": rng.normal(1.2, 0.05, 400),
                        "psfdepth_r": rng.normal(300, 30, 400)})
    pool = pd.DataFrame({"mag_r": rng.normal(21, 1.0, 3000), "psfsize_r": rng.normal(1.35, 0.1, 3000),
                         "psfdepth_r": rng.normal(250, 60, 3000)})
    idx = _matched_controls(pos, pool, 400, row_keys(1, "m", np.arange(3000, dtype=np.int64)))
    before = _standardised_mean_differences(pos, pool)
    after = _standardised_mean_differences(pos, pool.iloc[idx])
    assert len(set(idx)) == len(idx) == 400
    for f in before:
        assert abs(after[f]) < 0.5 * abs(before[f]), (f, before[f], after[f])


def test_unpaired_matched_keeps_a_larger_pool():
    m, audit = build_manifest(fake_parent(900), cfg(control="unpaired_matched", split="sky"), 1, NO_LENSES)
    assert m.galaxy_id.is_unique and abs((m.label == 1).mean() - 0.5) < 0.01
    assert audit["n_galaxies_used"] < 900 * 0.75  # a third of the galaxies stayed in the pool


def test_galaxies_near_known_lenses_are_never_controls():
    parent = fake_parent()
    known = pd.DataFrame({"ra": parent.ra.iloc[:5] + 3 / 3600, "dec": parent.dec.iloc[:5]})  # 3" away
    m, audit = build_manifest(parent, cfg(control="paired", split="galaxy"), 1, known)
    assert audit["n_vetoed_known_lens"] >= 5
    assert not m.galaxy_id.isin(parent.galaxy_id.iloc[:5]).any()


def test_parameters_follow_priors_and_the_lrg_shape():
    c = cfg(control="unpaired", split="galaxy", priors={"lens_q_scatter": 0.0, "theta_e": [1.0, 2.0]})
    parent = fake_parent()
    m, _ = build_manifest(parent, c, 1, NO_LENSES)
    pos = m[m.label == 1].merge(parent[["galaxy_id"]], on="galaxy_id")
    assert pos.theta_e.between(1.0, 2.0).all()
    from lensfinder.sky.shapes import axis_ratio_angle
    q_light, _ = axis_ratio_angle(pos.shape_e1.to_numpy(np.float64), pos.shape_e2.to_numpy(np.float64))
    np.testing.assert_allclose(pos.lens_q, np.clip(q_light, 0.5, 1.0), atol=1e-6)
    beta = np.hypot(pos.src_x, pos.src_y) / pos.theta_e
    inside = pos.source_in_caustic.to_numpy()
    assert (beta[inside] <= 1 + 1e-6).all() and (beta[~inside] >= 1 - 1e-6).all()
    assert 0.7 < inside.mean() < 0.9


def test_rows_do_not_depend_on_input_order_or_other_galaxies(tmp_path):
    parent = fake_parent()
    c = cfg(control="unpaired", split="sky")
    a, _ = build_manifest(parent, c, 1, NO_LENSES)
    b, _ = build_manifest(parent.sample(frac=1, random_state=0), c, 1, NO_LENSES)
    pd.testing.assert_frame_equal(a, b)
    # a positive's parameters depend only on (seed, dataset, galaxy)
    c2 = cfg(control="paired", split="sky")
    full, _ = build_manifest(parent, c2, 1, NO_LENSES)
    part, _ = build_manifest(parent.iloc[:300], c2, 1, NO_LENSES)
    merged = part.merge(full, on="sample_id", suffixes=("", "_full"))
    np.testing.assert_array_equal(merged.theta_e, merged.theta_e_full)
    np.testing.assert_array_equal(merged.seed, merged.seed_full)


def test_same_seed_gives_a_byte_identical_manifest_file(tmp_path):
    parent_path = tmp_path / "parent.parquet"
    fake_parent().to_parquet(parent_path)
    known = tmp_path / "known.csv"
    known.write_text("ra,dec\n0,0\n")
    digests = []
    for i in range(2):
        write_manifest(parent_path, cfg(control="paired", split="sky"), 7, known, tmp_path / f"m{i}.parquet",
                       tmp_path / f"a{i}.json")
        digests.append(hashlib.sha256((tmp_path / f"m{i}.parquet").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    write_manifest(parent_path, cfg(control="paired", split="sky"), 8, known, tmp_path / "m2.parquet", tmp_path / "a2.json")
    assert hashlib.sha256((tmp_path / "m2.parquet").read_bytes()).hexdigest() != digests[0]


def test_invalid_dataset_config_is_rejected():
    with pytest.raises(ValueError, match="control must be one of"):
        cfg(control="twins", split="sky")
    with pytest.raises(ValueError, match="split_fractions"):
        cfg(control="paired", split="sky", split_fractions={"train": 0.9, "val": 0.2, "test": 0.1})


def test_a_split_without_both_classes_fails_phase_4a_naming_the_dataset():
    from lensfinder.manifest import EmptySplit, check_splits

    audit = {"dataset": "v5_unpaired", "split_scheme": "sky", "healpix_nside": 1024, "n_rows": 40,
             "counts": {"train": {"positives": 3, "controls": 7}, "val": {"positives": 17, "controls": 13},
                        "test": {"positives": 0, "controls": 0}}}
    with pytest.raises(EmptySplit, match=r"dataset v5_unpaired: split\(s\) without positives or controls: \{'test'"):
        check_splits(audit)
    audit["counts"]["test"] = {"positives": 1, "controls": 1}
    check_splits(audit)
