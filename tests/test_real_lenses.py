"""The sim-to-real check's pieces: the lens list, the background sample, recall at the
background's FPR thresholds (against hand-computed cases)."""

import numpy as np
import pandas as pd
import pytest

from lensfinder.real_lenses import (KNOWN_LENS, RANDOM, RealLensesConfig, random_sample, read_lens_catalogue,
                                    recall_at_fpr, select_lenses, targets_table, thresholds_at_fprs)
from lensfinder.sky.bricks import brickname_at


def test_a_lens_list_without_coordinates_or_with_bad_ones_is_refused_naming_file_and_row(tmp_path):
    p = tmp_path / "lenses.csv"
    pd.DataFrame({"name": ["a"], "ra": [1.0]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"lenses.csv: .*missing: dec"):
        read_lens_catalogue(p)
    pd.DataFrame({"name": ["a", "b"], "ra": [1.0, 400.0], "dec": [0.0, 0.0]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"lenses.csv: row 3 \('b'\)"):
        read_lens_catalogue(p)
    pd.DataFrame({"name": ["a"], "ra": [1.0], "dec": [2.0]}).to_csv(p, index=False)
    got = read_lens_catalogue(p)
    assert got.loc[0, "grading"] == "ungraded" and got.loc[0, "type"] == "galaxy"


def test_lenses_are_cut_by_grading_type_and_footprint_bricks():
    known = pd.DataFrame({"name": list("abcde"), "ra": [150.1, 150.1, 150.1, 150.1, 10.0],
                          "dec": [2.1, 2.1, 2.1, 2.1, -5.0],
                          "grading": ["confident", "probable", "possible", "confident", "confident"],
                          "type": ["galaxy", "galaxy", "galaxy", "cluster", "galaxy"]})
    inside = {brickname_at(150.1, 2.1)}
    lenses, counts = select_lenses(known, RealLensesConfig(), inside)
    assert list(lenses["name"]) == ["a", "b"] and counts["n_grading_and_type"] == 3 and counts["n_in_footprint"] == 2
    assert counts["by_grading"] == {"confident": 1, "probable": 1}
    everywhere, _ = select_lenses(known, RealLensesConfig(footprint="all"), None)
    assert list(everywhere["name"]) == ["a", "b", "e"]


def test_the_background_leaves_out_the_datasets_galaxies_in_a_row_order_free_draw():
    parent = pd.DataFrame({"galaxy_id": np.arange(100, dtype=np.int64) + 1000, "brickname": "1501p020",
                           "ra": 150.0, "dec": 2.0})
    a = random_sample(parent, np.arange(1000, 1050), 20, seed=5)
    b = random_sample(parent.iloc[::-1], np.arange(1000, 1050), 20, seed=5)
    assert len(a) == 20 and (a["galaxy_id"] >= 1050).all()
    assert set(a["galaxy_id"]) == set(b["galaxy_id"])
    t = targets_table(pd.DataFrame({"name": ["L1"], "ra": [1.0], "dec": [2.0], "grading": ["confident"],
                                    "brickname": ["0010p020"]}), a)
    pops = t["population"].to_pylist()
    assert pops.count(KNOWN_LENS) == 1 and pops.count(RANDOM) == 20
    assert len(set(t["sample_id"].to_pylist())) == 21 and set(t["label"].to_pylist()) == {0}


def test_recall_at_fpr_by_hand():
    rnd = np.arange(1000, dtype=float)            # the background: scores 0 .. 999
    lens = np.array([995.0, 990.0, 989.0, 500.0])
    assert thresholds_at_fprs(rnd, [1e-2, 1e-3, 1e-4]).tolist() == [989.0, 998.0, 999.0]
    rows = {r["key"]: r for r in recall_at_fpr(lens, rnd, fprs=(1e-2, 1e-3, 1e-4), n_boot=200, seed=1)}
    r2 = rows["tpr@fpr0.01"]
    assert r2["threshold_logit"] == 989.0 and r2["fpr_realised"] == 0.01 and r2["n_recovered"] == 2
    assert r2["recall"] == 0.5 and r2["resolvable"]
    lo, hi = r2["recall_bootstrap_ci95"]
    assert lo <= 0.5 <= hi and r2["recall_wilson_ci95"][0] < 0.5 < r2["recall_wilson_ci95"][1]
    assert rows["tpr@fpr0.001"]["recall"] == 0.0 and rows["tpr@fpr0.001"]["resolvable"]
    assert not rows["tpr@fpr1e-4"]["resolvable"]  # 1,000 random galaxies cannot resolve 1e-4
    again = recall_at_fpr(lens, rnd, fprs=(1e-2,), n_boot=200, seed=1)[0]
    assert again["recall_bootstrap_ci95"] == r2["recall_bootstrap_ci95"]  # seeded
    assert recall_at_fpr(lens, rnd, fprs=(1e-2,), n_boot=0)[0]["recall_bootstrap_ci95"] is None
