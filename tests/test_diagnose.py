"""Diagnostics: ties and cliffs, memorisation, flux-only baseline, the user's gen2 history."""

import json

import numpy as np
import pandas as pd
import pytest

from lensfinder import flux_baseline as fb
from lensfinder.aperture_features import flux_features
from lensfinder.gen2 import diagnose, user_history
from lensfinder.gen2 import ties as gen2_ties
from lensfinder.gen2.ties import find_cliffs
from lensfinder.gen2.user_history import HistoryError, explain_gen2_history, read_gen2_history
from stampdata import write_stamp_files

REQUEST = "resources/gen2_history_request.json"


def saturating_val_scores(n=400, epochs=4, seed=0):
    """Validation logits whose scale grows per epoch: by the last epochs a few controls
    pass the bf16 saturation point (6.24) together with most lenses, while the float32
    ranking stays as good as before (lenses still above every control)."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(epochs):
        scale = 2.0 * (e + 1)
        pos = scale * (1.5 + rng.random(n))     # lenses: [1.5, 2.5] x scale
        neg = scale * (rng.random(n) - 0.5)     # controls: [-0.5, 0.5] x scale ...
        neg[:12] = scale * 1.2 + rng.random(12) * 0.1  # ... 12 lens-like controls just below the lenses
        for lab, lg in ((1, pos), (0, neg)):
            rows.append(pd.DataFrame({"epoch": e, "sample_id": np.arange(len(lg)) * 2 + lab, "label": lab,
                                      "logit": lg.astype(np.float32)}))
    return pd.concat(rows, ignore_index=True)


def test_find_cliffs_needs_a_significant_drop_to_zero():
    assert find_cliffs([0.8, 0.79, 0.0, 0.0], n_pos=1000) == [2]
    assert find_cliffs([0.002, 0.0], n_pos=1000) == []        # 2/1000: its interval reaches the floor of 0
    assert find_cliffs([0.5, 0.4, 0.1], n_pos=1000) == []      # a slope, not a cliff
    assert find_cliffs([0.7, 0.0]) == [1]                       # n_pos unknown: >= 5% to 0


def test_bf16_cliff_is_a_tie_artefact_absent_in_float32_logits():
    vs = saturating_val_scores()
    ties = gen2_ties.tie_analysis(vs, ["prob_bfloat16", "logit_float32"])
    bf = [t for t in ties if t["score_dtype"] == "prob_bfloat16"]
    f32 = [t for t in ties if t["score_dtype"] == "logit_float32"]
    assert all(t["tpr@fpr0.001"] == 1.0 for t in f32)           # the ranking never changes
    assert all(t["n_neg_tied_at_top"] == 0 for t in f32)
    assert bf[0]["tpr@fpr0.001"] == 1.0 and bf[-1]["tpr@fpr0.001"] == 0.0
    assert bf[-1]["n_neg_saturated"] == 12 and bf[-1]["n_neg_tied_at_top"] == 12
    cl = gen2_ties.cliff_summary(ties)
    assert cl["prob_bfloat16"]["tpr@fpr0.001"] and not cl["logit_float32"]["tpr@fpr0.001"]


def test_memorisation_signature_detects_controls_of_trained_twins():
    rng = np.random.default_rng(1)
    n = 300
    gal = np.arange(n)
    split = np.where(rng.random(n) < 0.5, "train", "val")
    pos = pd.DataFrame({"sample_id": gal * 2 + 1, "twin_sample_id": gal * 2, "split": split})
    ctl = pd.DataFrame({"sample_id": gal * 2, "twin_sample_id": gal * 2 + 1, "split": "val"})
    manifest = pd.concat([pos, ctl], ignore_index=True)
    logit = rng.normal(0, 1, n) + np.where(split == "train", 2.0, 0.0)  # memorised: twin trained -> high score
    vs = pd.DataFrame({"epoch": 0, "sample_id": gal * 2, "label": 0, "logit": logit.astype(np.float32)})
    m = diagnose.memorisation(vs, manifest)
    e = m["epochs"][0]
    assert m["applicable"] and e["auc_twin_trained_vs_other"] > 0.8 and e["p_value"] < 1e-6
    vs["logit"] = rng.normal(0, 1, n).astype(np.float32)  # no memorisation
    assert diagnose.memorisation(vs, manifest)["epochs"][0]["p_value"] > 1e-3
    unpaired = manifest.assign(twin_sample_id=-1)
    assert diagnose.memorisation(vs, unpaired)["applicable"] is False


def test_flux_baseline_uses_summaries_only_and_finds_extra_flux(tmp_path):
    paths = write_stamp_files(tmp_path, n_files=1, groups=6, rows=60, seed=3)  # positives carry a ring of flux
    res = fb.flux_baseline(paths, seed=0, name="synthetic")
    assert res["n_features"] == 25
    for model in ("logistic_regression", "gradient_boosting"):
        assert res["models"][model]["test"]["auc"] > 0.9  # the ring is extra flux in an annulus


def test_flux_features_of_an_empty_stamp_are_zero_and_shape_is_fixed():
    f = flux_features(np.zeros((5, 3, 64, 64), np.float32))
    assert f.shape == (5, 25) and np.all(f == 0)


def test_request_history_is_explained_by_ties():
    res = explain_gen2_history(read_gen2_history(REQUEST), n_neg=65090, n_pos=62910)
    assert res["cliffs"] == {"tpr@fpr1e-4": [5], "tpr@fpr0.001": [7]}
    assert res["saturation_signature_epochs"] == [7]
    assert res["budget_negatives"] == {"tpr@fpr1e-4": 6, "tpr@fpr0.001": 65}
    e5 = next(e for e in res["epochs"] if e["epoch"] == 5)
    assert e5["implied_neg_tied_at_top"] == 46 and e5["consistent"]  # 46 > 6 kills 1e-4; < 65 spares 1e-3
    assert res["verdict"].startswith("saturation")


def test_history_without_cliff_gets_no_saturation_verdict(tmp_path):
    p = tmp_path / "h.json"
    p.write_text(json.dumps([{"epoch": i, "tpr@fpr1e-4": 0.5 + 0.01 * i, "tpr@fpr0.001": 0.7, "fpr@tpr0.50": 0.0}
                             for i in range(4)]))
    res = explain_gen2_history(read_gen2_history(p), n_neg=1000)
    assert not any(res["cliffs"].values()) and res["verdict"].startswith("no saturation")


@pytest.mark.parametrize("content, message", [
    ('[{"epoch": 0, "tpr@fpr0.001": 0.5}]', "epoch 0: missing key 'tpr@fpr1e-4'"),
    ('[{"epoch": 3, "tpr@fpr1e-4": NaN, "tpr@fpr0.001": 0.5}]', "epoch 3: 'tpr@fpr1e-4' is nan"),
    ('[{"epoch": 2, "tpr@fpr1e-4": 79.8, "tpr@fpr0.001": 0.5}]', "not percent"),
    ('[{"epoch": 1, "tpr@fpr1e-4": "high", "tpr@fpr0.001": 0.5}]', "is not a number"),
    ('{"a": [1, 2], "b": [1]}', "different lengths"),
    ('not json', "not valid JSON"),
])
def test_bad_history_gives_a_clear_message_naming_file_epoch_and_key(tmp_path, capsys, content, message):
    p = tmp_path / "history.json"
    p.write_text(content)
    with pytest.raises(HistoryError, match=message.replace("(", r"\(")) as exc:
        read_gen2_history(p)
    assert str(p) in str(exc.value)
    assert user_history.main([str(p), "--n-neg", "100"]) == 2  # the CLI: message, exit 2, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_history_formats_columns_and_nested_val(tmp_path):
    cols = tmp_path / "cols.json"
    cols.write_text(json.dumps({"epoch": [0, 1], "tpr@fpr1e-4": [0.7, 0.0], "tpr@fpr0.001": [0.8, 0.8]}))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"history": [{"epoch": 0, "val": {"tpr@fpr0.0001": 0.7, "tpr@fpr1e-3": 0.8}}]}))
    assert list(read_gen2_history(cols)["tpr@fpr1e-4"]) == [0.7, 0.0]
    assert read_gen2_history(nested)["tpr@fpr0.001"].iloc[0] == 0.8
