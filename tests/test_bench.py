"""The test bench (issue 27): its region is held out of every dataset, its rows, and the
metrics read off it -- against hand-computed examples, prevalence weighting included."""

import numpy as np
import pandas as pd
import pytest

from lensfinder.bench import BenchConfig, build_bench_manifest
from lensfinder.bench_metrics import (bench_metrics, population_fprs, prevalence_weights, purity_completeness,
                                      selection_function, sky_rates_table)
from lensfinder.bench_region import BenchRegion, bench_pixels, in_bench, pixel_in_bench
from lensfinder.manifest import DatasetConfig, build_manifest
from lensfinder.parent_negatives import ParentNegativesConfig, select_parent_negatives
from lensfinder.replicates import SeedScores
from lensfinder.sky.false_positives import ORDINARY
from test_manifest import NO_LENSES, fake_parent

SEED = 5
REGION = BenchRegion(fraction=0.3, healpix_nside=256)


def with_populations(parent: pd.DataFrame) -> pd.DataFrame:
    pops = np.array([ORDINARY] * 6 + ["ring", "spiral_arms", "blue_companion", "tidal_tails"])
    return parent.assign(population=pops[np.arange(len(parent)) % len(pops)])


@pytest.mark.parametrize("control, split", [("paired", "row"), ("paired", "galaxy"), ("unpaired", "sky"),
                                            ("matched_after_injection", "sky")])
def test_no_bench_galaxy_enters_any_dataset_split(control, split):
    parent = with_populations(fake_parent(3000))
    benched = in_bench(parent["ra"], parent["dec"], REGION, SEED)
    assert 0.15 < benched.mean() < 0.45  # the region is a real part of this sky
    ds = DatasetConfig.from_dict("ds", {"control": control, "split": split, "healpix_nside": 256})
    m, audit = build_manifest(parent, ds, SEED, NO_LENSES, bench=REGION)
    # by galaxy id ...
    assert not np.isin(m["galaxy_id"], parent.loc[benched, "galaxy_id"]).any()
    # ... and by pixel: no manifest row lies in a bench pixel
    assert not pixel_in_bench(bench_pixels(m["ra"], m["dec"], REGION), REGION, SEED).any()
    assert audit["n_in_bench_region"] == benched.sum()
    # without the region the same dataset does use those galaxies (the test can fail)
    m_all, _ = build_manifest(parent, ds, SEED, NO_LENSES)
    assert np.isin(m_all["galaxy_id"], parent.loc[benched, "galaxy_id"]).any()


def test_parent_negatives_leave_the_bench_region_out():
    parent = fake_parent(3000)
    ds = DatasetConfig.from_dict("ds", {"control": "unpaired", "split": "sky", "healpix_nside": 256})
    m, _ = build_manifest(parent, ds, SEED, NO_LENSES, bench=REGION)
    rows, audit = select_parent_negatives(parent, m, np.array([], np.int64), ds, SEED, NO_LENSES,
                                          ParentNegativesConfig(True), REGION)
    assert not in_bench(parent["ra"].iloc[rows], parent["dec"].iloc[rows], REGION, SEED).any()
    assert audit["n_in_bench_region"] > 0


def test_bench_manifest_rows():
    parent = with_populations(fake_parent(3000))
    cfg = BenchConfig(region=REGION, lenses=100, unlensed_controls=40)
    m, audit = build_bench_manifest(parent, cfg, SEED, NO_LENSES)
    region_ids = parent.loc[in_bench(parent["ra"], parent["dec"], REGION, SEED), "galaxy_id"]
    sky = m[m["bench_kind"] == 0]
    assert sorted(sky["galaxy_id"]) == sorted(region_ids)  # every LRG of the region, as it is
    assert (sky["label"] == 0).all() and sky["theta_e"].isna().all()
    lens, unl = m[m["bench_kind"] == 1], m[m["bench_kind"] == 2]
    assert len(lens) == 100 and (lens["label"] == 1).all() and lens["theta_e"].notna().all()
    assert len(unl) == 40 and (unl["label"] == 0).all() and (unl["population"] == "unlensed_source").all()
    assert not set(lens["galaxy_id"]) & set(unl["galaxy_id"])
    hosts = parent.set_index("galaxy_id").loc[lens["galaxy_id"], "population"]
    assert (hosts == ORDINARY).all()  # arcs go into ordinary LRGs only
    assert m["sample_id"].is_unique and (m["split"] == "test").all()
    assert (m["sample_id"] & 3).tolist() == m["bench_kind"].tolist()
    assert audit["rows"] == {"sky": len(sky), "lens": 100, "unlensed": 40}
    # the bench's own priors: realistic faint sources, not a dataset's
    assert lens["src_mag_r"].between(22.0, 25.0).all()
    # rows do not depend on the other galaxies: drop a tenth of the parent sample
    m2, _ = build_bench_manifest(parent.iloc[::10].pipe(lambda x: parent.drop(x.index)), cfg, SEED, NO_LENSES)
    both = m.merge(m2, on="sample_id", suffixes=("", "_2"))
    assert np.allclose(both["theta_e"], both["theta_e_2"], equal_nan=True)


def test_bench_config_rejects_impossible_settings():
    with pytest.raises(ValueError, match="fraction"):
        BenchConfig.from_dict({"region": {"fraction": 1.5}})
    with pytest.raises(ValueError, match="sky_rates"):
        BenchConfig.from_dict({"sky_rates": {"ring": 0.7, "spiral_arms": 0.6}})
    with pytest.raises(TypeError):
        BenchConfig.from_dict({"lense": 3})


def test_prevalence_weights_by_hand():
    # 6 ordinary, 2 ring, 2 spiral; sky rates ring 1%, spiral 4%: rings carry 1% of the
    # total weight 10 (0.1 between 2: 0.05 each), spirals 0.4 (0.2 each), ordinary the rest
    pops = np.array(["ordinary"] * 6 + ["ring"] * 2 + ["spiral_arms"] * 2)
    w = prevalence_weights(pops, {"ring": 0.01, "spiral_arms": 0.04, "tidal_tails": 0.03})
    assert w.sum() == pytest.approx(10)
    assert w[6] == pytest.approx(0.05) and w[8] == pytest.approx(0.2)
    assert w[0] == pytest.approx(10 * 0.95 / 6)
    # real data: one unlabelled population, every weight 1
    assert np.array_equal(prevalence_weights(np.array(["unlabelled"] * 4), {"ring": 0.01}), np.ones(4))


def test_sky_prevalence_tpr_by_hand_and_as_the_bootstrap_computes_it():
    # negatives: 4 ordinary (weight 1 each) and one ring scored highest with weight 0.01
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([5.0, 3.0, 1.5, 0.5, 9.0, 2.0, 1.0, 0.0, -1.0])
    weight = np.array([1, 1, 1, 1, 0.01, 1, 1, 1, 1.0])
    t = sky_rates_table(labels, scores, weight)
    # FPR 1e-2 of total weight 4.01 allows 0.0401: the ring (0.01) may pass, not the next
    # negative (2.0): TPR = positives above 2.0 = 2/4. Unweighted, 1e-2 of 5 allows none: 0
    assert t["tpr@fpr0.01"] == 0.5
    assert sky_rates_table(labels, scores, np.ones(9))["tpr@fpr0.01"] == 0.0
    assert t["n_neg"] == 5 and t["n_neg_effective"] == pytest.approx(4.01 ** 2 / (4 + 1e-4))
    # the comparison's bootstrap metric gives the same numbers
    s = SeedScores.from_runs([(np.arange(9), labels, scores)], "logit_float32", (np.arange(9), weight))
    assert s.seed_values("tpr@fpr0.001").mean == t["tpr@fpr0.001"]
    assert s.seed_values("auc").mean == pytest.approx(t["auc"])
    # AUC by hand: each positive against the weighted negatives below it
    below = [(scores[4:][scores[4:] < p] * 0 + weight[4:][scores[4:] < p]).sum() for p in scores[:4]]
    assert t["auc"] == pytest.approx(sum(below) / (4 * 4.01))


def test_population_fpr_purity_and_selection_by_hand():
    pos = np.array([4.0, 3.0, 2.0, 1.0])  # TPR 0.5 -> threshold 3.0; TPR 0.9 -> 1.0
    neg = np.array([3.5, 0.5, 2.5, 1.5, 0.0])
    pops = np.array(["ring", "ring", "ordinary", "ordinary", "ordinary"])
    f = population_fprs(pos, neg, pops)
    assert f["ring"]["fpr@tpr0.5"] == 0.5 and f["ring"]["fpr@tpr0.9"] == 0.5
    assert f["ordinary"]["fpr@tpr0.5"] == 0.0 and f["ordinary"]["fpr@tpr0.9"] == pytest.approx(2 / 3)
    assert f["ordinary"]["n"] == 3
    # purity at prevalence 0.01, completeness 0.5: FPR = 1/5 (the 3.5) -> 0.005 / (0.005 + 0.99 * 0.2)
    labels = np.r_[np.ones(4), np.zeros(5)]
    pc = purity_completeness(labels, np.r_[pos, neg], np.r_[np.ones(4), np.ones(5)], 0.01)
    half = pc["at_completeness_0.5"]
    assert half["sky_fpr"] == pytest.approx(0.2)
    assert half["purity"] == pytest.approx(0.005 / (0.005 + 0.99 * 0.2))
    assert half["candidates_per_lens"] == pytest.approx(1 / half["purity"])
    # selection: found = score >= 2.0; theta_e bins by quantile
    sel = selection_function(pos, {"theta_e": np.array([1.0, 2.0, 3.0, np.nan])}, 2.0, n_bins=2)
    bins = sel["theta_e"]["bins"]
    assert [b["n"] for b in bins] == [1, 2] and [b["recall"] for b in bins] == [1.0, 1.0]
    assert sel["theta_e"]["n_missing"] == 1


def test_bench_metrics_keep_the_hard_subset_out_of_the_sky_rate():
    labels = np.array([1, 1, 0, 0, 0, 0])
    scores = np.array([2.0, 1.0, 0.0, -1.0, 5.0, 6.0])
    kind = np.array([1, 1, 0, 0, 2, 2])  # the two highest negatives are unlensed copies
    pops = np.array(["ordinary"] * 4 + ["unlensed_source"] * 2)
    m = bench_metrics(labels, scores, kind, pops, {"theta_e": np.array([1.0, 2.0])}, {}, 1e-3, 0.4)
    assert m["sky_prevalence"]["n_neg"] == 2 and m["sky_prevalence"]["auc"] == 1.0
    assert m["populations"]["unlensed_source"]["fpr@tpr0.9"] == 1.0
    assert m["selection_function"]["recall"] == 1.0
