"""The learning curve's runs and its summary, on hand-made inputs."""

import json

import numpy as np
import pytest

from lensfinder.contracts import ContractError
from lensfinder.metrics import evaluate_scores
from lensfinder.learning_curve import CurvePoint, learning_curve_runs, trend, write_learning_curve


def test_points_are_the_run_with_a_train_fraction_and_bad_fractions_are_named():
    runs = {"gen3": {"dataset": "v5", "loader": {"batch_size": 64}, "seeds": [1, 2]}}
    got = learning_curve_runs(runs, {"run": "gen3", "fractions": [0.25, 0.5]})
    assert list(got) == ["gen3_lc1", "gen3_lc2"]
    assert got["gen3_lc1"] == {"dataset": "v5", "loader": {"batch_size": 64, "train_fraction": 0.25}, "seeds": [1, 2]}
    assert runs["gen3"]["loader"] == {"batch_size": 64}  # the run itself untouched
    for bad in ([1.0], [0.5, 0.5], [0.0]):
        with pytest.raises(ValueError, match="learning_curve.fractions"):
            learning_curve_runs(runs, {"run": "gen3", "fractions": bad})
    with pytest.raises(KeyError, match="gen4"):
        learning_curve_runs(runs, {"run": "gen4", "fractions": [0.5]})
    assert learning_curve_runs(runs, None) == {}


def _files(tmp_path, name, lenses, auc, tpr3):
    m, h = tmp_path / f"{name}_m.json", tmp_path / f"{name}_h.json"
    m.write_text(json.dumps({"sky_prevalence": {"auc": auc, "tpr@fpr0.001": tpr3, "tpr@fpr1e-4": tpr3 / 2,
                                                "n_pos": 50, "n_neg": 900}}))
    scores = evaluate_scores([1, 0, 1, 0], [2.0, 0.0, 1.0, -1.0])  # every score field a history holds
    epochs = [{**scores, "epoch": e, "train_loss": 0.3, "samples_seen_epoch": 3 * lenses, "n_train": 3 * lenses,
               "n_train_pos": lenses, "duplication_factor": 1.0, "samples_seen": 3 * lenses * (e + 1),
               "n_skipped_nonfinite": 0, "lr": 1e-3, "seconds": 1.0, "mean_abs_logit_pos": 1.0,
               "mean_abs_logit_neg": 1.0, "max_logit_neg": 1.0, "best_epoch": 1, "auc": auc - 0.1 / (e + 1)}
              for e in range(3)]
    h.write_text(json.dumps({"run": name, "fingerprint": "f", "data_fingerprint": "d", "best_epoch": 1,
                             "stopped_early": False, "epochs": epochs}))
    return str(m), str(h)


def test_the_curve_gathers_every_point_and_labels_its_trend_an_extrapolation(tmp_path):
    pts = []
    for f, lenses, aucs, tprs in ((1.0, 1000, (0.90, 0.92), (0.30, 0.34)), (0.1, 100, (0.80, 0.82), (0.10, 0.14)),
                                  (0.01, 10, (0.70, 0.72), (0.0, 0.04))):
        files = [_files(tmp_path, f"{f}_{k}", lenses, a, t) for k, (a, t) in enumerate(zip(aucs, tprs))]
        pts.append(CurvePoint(f, [f"r{f}_{k}" for k in range(2)], [m for m, _ in files], [h for _, h in files]))
    out = write_learning_curve(pts, "gen3", tmp_path / "lc.json", tmp_path / "lc.png")
    assert [p["fraction"] for p in out["points"]] == [0.01, 0.1, 1.0]  # sorted by fraction
    assert out["points"][0]["n_train_lenses"] == [10, 10] and out["points"][2]["bench"]["auc"] == [0.90, 0.92]
    assert len(out["points"][1]["val_by_epoch"][0]) == 3
    # by hand: seed means 0.02, 0.12, 0.32 at log10 lenses 1, 2, 3: slope 0.15, intercept
    # 0.1533 - 2 x 0.15 = -0.1467, so 4 x 0.15 - 0.1467 = 0.4533 at 10,000 lenses
    t = out["trend"]["tpr@fpr0.001"]
    assert t["per_decade"] == pytest.approx(0.15) and t["at_10x_the_largest"] == pytest.approx(0.45333, abs=1e-4)
    assert "extrapolation" in t["assumes"]
    # 0.5 is reached at log10 N = (0.5 + 0.1467) / 0.15 = 4.311; 650,000 lenses give 0.7305
    assert t["lenses_to_reach_target"] == pytest.approx(10 ** 4.3111, rel=1e-3)
    assert t["at_production"] == pytest.approx(0.15 * np.log10(650_000) - 0.14667, abs=1e-4)
    assert json.loads((tmp_path / "lc.json").read_text())["simulation"] is True
    assert (tmp_path / "lc.png").stat().st_size > 0
    bad = tmp_path / "bad_h.json"
    bad.write_text(json.dumps({"run": "x", "epochs": []}))
    with pytest.raises(ContractError, match="bad_h.json"):  # a malformed history is named, not a KeyError
        write_learning_curve([CurvePoint(1.0, ["x"], [pts[0].bench_metrics[0]], [str(bad)])], "gen3",
                             tmp_path / "x.json", tmp_path / "x.png")
    assert trend(out["points"][:2], "auc") is None  # two points: no trend
    assert np.isclose(out["trend"]["auc"]["per_decade"], 0.10)
