"""Phase 4d: controls matched after injection; hard negatives; per-population scores."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lensfinder.aperture_features import FEATURE_NAMES, flux_features
from lensfinder.manifest import (DatasetConfig, build_manifest, mark_past_false_positives, read_past_false_positives,
                                 take_controls)
from lensfinder.matching import SMD_TARGET, greedy_match, match_controls, run_matching, write_matched
from lensfinder.metrics import negatives_by_population
from lensfinder.stamps import encode_stamps, iter_row_groups, writer_options

from test_manifest import fake_parent as parent_sample


def _features(rng, n_pos=300, n_cand=1200):
    """Features driven by three latent quantities (annular fluxes and colours are strongly
    correlated). Positives: latents shifted by +1 sd (the "extra flux"); candidates: mostly
    unshifted, 40% (the look-alikes) shifted like the positives."""
    k = len(FEATURE_NAMES)
    mixing = rng.normal(size=(3, k))
    pos = rng.normal(1.0, 1.0, (n_pos, 3))
    cand = rng.normal(0.0, 1.0, (n_cand, 3))
    hard = rng.random(n_cand) < 0.4
    cand[hard] += 1.0
    pos, cand = pos @ mixing + rng.normal(0, 0.3, (n_pos, k)), cand @ mixing + rng.normal(0, 0.3, (n_cand, k))
    df = pd.DataFrame(np.vstack([pos, cand]), columns=[f"feat_{i}" for i in range(k)])
    df.insert(0, "sample_id", np.arange(n_pos + n_cand) * 2 + np.r_[np.ones(n_pos), np.zeros(n_cand)].astype(int))
    df.insert(1, "label", np.r_[np.ones(n_pos), np.zeros(n_cand)].astype(np.int8))
    df.insert(2, "split", rng.choice(["train", "val", "test"], n_pos + n_cand, p=[0.6, 0.2, 0.2]))
    df.insert(3, "population", np.r_[np.full(n_pos, "ordinary"), np.where(hard, "ring", "ordinary")])
    return df


def test_greedy_match_takes_distinct_nearest_candidates():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(50, 4))
    cand = np.vstack([rng.normal(size=(200, 4)) + 5, pos + 1e-6, pos + 1e-6])  # two exact twins each
    idx = greedy_match(pos, cand, 100)
    assert len(set(idx.tolist())) == 100
    assert np.all(idx >= 200)  # only the twins are chosen: both copies of every positive
    assert len(greedy_match(pos, cand[:10], 20)) == 10  # never more than there are candidates


def test_matching_removes_the_feature_shift_and_is_deterministic():
    feats = _features(np.random.default_rng(1))
    keep, audit = match_controls(feats, 1.0)
    assert audit["smd_positives_vs_candidates"]["max_abs"] > 0.5
    assert audit["smd_positives_vs_controls"]["max_abs"] < SMD_TARGET and audit["balanced"]
    assert audit["controls_by_population"]["ring"] > audit["controls_by_population"].get("ordinary", 0)
    for split, c in audit["per_split"].items():
        assert c["controls"] == c["positives"], split
    ctl = feats[feats.sample_id.isin(keep)]
    assert set(ctl["label"]) == {0}
    # controls of a split come from that split
    assert (ctl.groupby("split").size() == feats[feats.label == 1].groupby("split").size()).all()
    keep2, _ = match_controls(feats.sample(frac=1.0, random_state=3).sort_values("sample_id"), 1.0)
    assert np.array_equal(keep, keep2)


def test_matching_reports_what_it_could_not_balance():
    rng = np.random.default_rng(2)
    feats = _features(rng, n_pos=200, n_cand=300)
    feats.loc[feats.label == 0, [c for c in feats if c.startswith("feat_")]] -= 3.0  # no look-alike close
    keep, audit = match_controls(feats, 2.0)  # asks for more controls than some splits hold
    assert not audit["balanced"] and audit["smd_positives_vs_controls"]["n_features_over_target"] > 0
    short = sum(c["short_of_candidates"] for c in audit["per_split"].values())
    assert short > 0 and len(keep) == 400 - short


def _stamp_file(path, sample_ids, labels, seed, splits=None):
    rng = np.random.default_rng(seed)
    st = rng.normal(0, 0.01, (len(sample_ids), 3, 64, 64)).astype(np.float32)
    splits = ["train"] * len(sample_ids) if splits is None else list(splits)
    t = pa.table({"sample_id": pa.array(sample_ids, pa.int64()), "label": pa.array(labels, pa.int8()),
                  "split": splits, "population": ["ordinary"] * len(sample_ids),
                  "stamp": encode_stamps(st)})
    pq.write_table(t, path, row_group_size=7, **writer_options(t.schema))
    return st


def test_write_matched_copies_positives_and_chosen_controls_byte_for_byte(tmp_path):
    ids = np.arange(20)
    labels = (ids % 2).astype(np.int8)
    st = _stamp_file(tmp_path / "a.parquet", ids, labels, 0)
    keep = np.array([0, 4, 18])
    n = write_matched([tmp_path / "a.parquet"], [tmp_path / "b.parquet"], keep)
    assert n == 10 + 3
    got_ids, got = [], []
    for t, s in iter_row_groups(tmp_path / "b.parquet", columns=["sample_id"]):
        got_ids += t["sample_id"].to_pylist()
        got.append(s)
    assert got_ids == sorted(set(ids[labels == 1].tolist()) | set(keep.tolist()))
    assert np.array_equal(np.concatenate(got), st[got_ids])


def test_write_matched_writes_row_groups_of_one_split_each(tmp_path, monkeypatch):
    import lensfinder.matching as matching
    monkeypatch.setattr(matching, "ROW_GROUP_ROWS", 4)
    ids = np.arange(60)
    splits = np.array(["train", "val", "test"])[ids % 3]
    st = _stamp_file(tmp_path / "a.parquet", ids, np.ones(60, np.int8), 1, splits)  # row groups of 7, mixed
    assert write_matched([tmp_path / "a.parquet"], [tmp_path / "b.parquet"], np.zeros(0, np.int64)) == 60
    seen = []
    for t, s in iter_row_groups(tmp_path / "b.parquet", columns=["sample_id", "split"]):
        assert len(set(t["split"].to_pylist())) == 1 and t.num_rows <= 4
        seen += t["sample_id"].to_pylist()
        assert np.array_equal(s, st[t["sample_id"].to_numpy()])
    assert sorted(seen) == ids.tolist()


def test_run_matching_matches_on_the_stamps_aperture_features(tmp_path):
    """End to end on pixels: positives carry a blue ring; a third of the candidates carry
    the same ring (look-alikes). The matched controls are the look-alikes."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:64, :64] - 31.5
    ring = np.exp(-0.5 * (np.hypot(xx, yy) - 4) ** 2)[None] * np.array([1.0, 0.6, 0.3])[:, None, None]
    n_pos, n_cand = 40, 120
    lab = np.r_[np.ones(n_pos), np.zeros(n_cand)].astype(np.int8)
    has_ring = (lab == 1) | (np.arange(n_pos + n_cand) % 3 == 0)
    st = rng.normal(0, 0.02, (len(lab), 3, 64, 64)) + has_ring[:, None, None, None] * ring
    t = pa.table({"sample_id": pa.array(np.arange(len(lab)) * 2 + lab, pa.int64()), "label": lab,
                  "split": ["train"] * len(lab), "population": np.where(has_ring & (lab == 0), "ring", "ordinary"),
                  "stamp": encode_stamps(st.astype(np.float32))})
    pq.write_table(t, tmp_path / "s.parquet", **writer_options(t.schema))
    audit = run_matching([tmp_path / "s.parquet"], [tmp_path / "m.parquet"], tmp_path / "audit.json", 1.0, "d")
    assert audit["controls_by_population"] == {"ring": n_pos}
    assert audit["n_rows_written"] == 2 * n_pos
    feats = flux_features(st.astype(np.float32))
    assert feats.shape == (len(lab), len(FEATURE_NAMES))


def test_hard_negative_fraction_sets_the_controls_populations():
    parent = parent_sample(400)
    parent["population"] = np.where(np.arange(400) % 4 == 0, "ring", "ordinary")
    cfg = DatasetConfig.from_dict("d", {"control": "unpaired", "hard_negative_fraction": 0.5})
    m, audit = build_manifest(parent, cfg, 1, pd.DataFrame({"ra": [], "dec": []}))
    pos, ctl = m[m.label == 1], m[m.label == 0]
    assert set(pos["population"]) == {"ordinary"}  # look-alikes are kept for the negatives
    assert abs((ctl["population"] == "ring").mean() - 0.5) < 0.01
    assert audit["populations"]["controls"]["ring"] == int((ctl["population"] == "ring").sum())
    with pytest.raises(ValueError, match="paired"):
        DatasetConfig.from_dict("d", {"control": "paired", "hard_negative_fraction": 0.2})


def test_take_controls_keeps_the_fraction_when_hard_negatives_run_short():
    pool = pd.DataFrame({"population": ["ring"] * 10 + ["ordinary"] * 90})
    out = take_controls(pool, 0.5)
    assert (out["population"] == "ring").sum() == 10 and len(out) == 20


def test_take_controls_when_ordinary_galaxies_run_short_keeps_the_fraction_or_fills_with_hard_ones():
    pool = pd.DataFrame({"population": ["ring"] * 90 + ["ordinary"] * 10})
    out = take_controls(pool, 0.6)  # 10 ordinary hold 40%: 15 rings beside them
    assert (out["population"] == "ordinary").sum() == 10 and (out["population"] == "ring").sum() == 15
    cand = take_controls(pool, 0.6, fill=True)  # phase 4d candidates: every galaxy of the pool
    assert len(cand) == 100
    assert len(take_controls(pool.iloc[:90], 0.6, fill=True)) == 90  # no ordinary galaxy left at all


def test_past_false_positives_by_id_or_position(tmp_path):
    parent = parent_sample(50)
    parent["population"] = "unlabelled"
    (tmp_path / "ids.csv").write_text("galaxy_id\n" + "\n".join(str(g) for g in parent.galaxy_id[:3]) + "\n")
    gal = parent.copy()
    assert mark_past_false_positives(gal, read_past_false_positives(tmp_path / "ids.csv")) == 3
    assert (gal["population"] == "past_false_positive").sum() == 3
    pos = parent.iloc[[5, 6]][["ra", "dec"]]
    pos.to_csv(tmp_path / "pos.csv", index=False)
    gal = parent.copy()
    assert mark_past_false_positives(gal, read_past_false_positives(tmp_path / "pos.csv")) == 2
    (tmp_path / "bad.csv").write_text("name,x\na,1\n")
    with pytest.raises(ValueError, match="bad.csv.*galaxy_id"):
        read_past_false_positives(tmp_path / "bad.csv")


def test_negatives_by_population_hand_example():
    labels = np.array([1] * 10 + [0] * 6)
    logits = np.r_[np.arange(10, 20), [19.5, 15, 1, 2, 11, 0]].astype(np.float32)
    pop = np.array(["ordinary"] * 10 + ["ring", "ring", "ring", "ordinary", "ordinary", "ordinary"])
    out = negatives_by_population(labels, logits, pop)
    assert out["thresholds"] == {"tpr0.9": 11.0, "tpr0.5": 15.0}  # keeps 9/10 and 5/10 of the positives
    ring, ordinary = out["populations"]["ring"], out["populations"]["ordinary"]
    assert ring["n"] == 3 and ring["fpr@tpr0.9"] == pytest.approx(2 / 3) and ring["fpr@tpr0.5"] == pytest.approx(2 / 3)
    assert ordinary["fpr@tpr0.9"] == pytest.approx(1 / 3) and ordinary["fpr@tpr0.5"] == 0.0
    assert ring["logit_max"] == 19.5 and ordinary["logit_p50"] == 2.0


def test_features_of_no_stamps_and_no_empty_row_groups(tmp_path):
    """A brick whose every row was skipped gave phase 4c an empty row group, and phase 4d's
    features failed on it ("cannot reshape array of size 0"), ending the science run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lensfinder.aperture_features import FEATURE_NAMES, flux_features
    from lensfinder.tables import ParquetStreamWriter

    assert flux_features(np.zeros((0, 3, 64, 64), np.float32)).shape == (0, len(FEATURE_NAMES))
    schema = pa.schema([("x", pa.int64())])
    with ParquetStreamWriter(tmp_path / "t.parquet", schema) as w:
        w.write(pa.table({"x": pa.array([], pa.int64())}))
        w.write(pa.table({"x": [1, 2]}))
    md = pq.read_metadata(tmp_path / "t.parquet")
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [2]
