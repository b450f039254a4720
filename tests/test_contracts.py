"""The JSON products passed between rules: what producers write is what consumers accept,
and a renamed or mistyped field fails when read, naming the file and key."""

import json

import numpy as np
import pytest

from lensfinder import contracts as C
from lensfinder.metrics import evaluate_scores


def _history(tmp_path):
    rng = np.random.default_rng(0)
    lab = np.r_[np.ones(50), np.zeros(200)].astype(np.int8)
    lg = (rng.normal(size=250) + 2 * lab).astype(np.float32)
    rec = {"epoch": 0, "train_loss": 0.3, "samples_seen_epoch": 100, "n_train": 100, "duplication_factor": 1.0,
           "samples_seen": 100, "n_skipped_nonfinite": 0, "lr": 1e-3, "seconds": 2.5, "mean_abs_logit_pos": 1.0,
           "mean_abs_logit_neg": 0.5, "max_logit_neg": 3.0, **evaluate_scores(lab, lg), "best_epoch": 0}
    h = {"run": "r", "fingerprint": "f", "data_fingerprint": "d", "best_epoch": 0, "stopped_early": False,
         "epochs": [rec]}
    path = tmp_path / "history.json"
    path.write_text(json.dumps(h))
    return path, h


def test_metric_names_come_from_one_function():
    m = evaluate_scores([1, 0, 1, 0], [2.0, 0.0, 1.0, -1.0])
    assert C.metric_key(1e-4) == "tpr@fpr1e-4" and C.metric_key(1e-3) == "tpr@fpr0.001"  # gen2's spellings
    assert set(C.TPR_KEYS) | set(C.FPR_KEYS) <= set(m)
    C.check(C.ScoreMetrics, m, "evaluate_scores")  # the producer satisfies its contract


def test_a_valid_history_reads_back(tmp_path):
    path, h = _history(tmp_path)
    assert C.read(C.History, path) == json.loads(json.dumps(h))


@pytest.mark.parametrize("mutate, message", [
    (lambda h: h["epochs"][0].pop("auc"), ".epochs[0]: missing key(s) ['auc']"),
    (lambda h: h["epochs"][0].update({"AUC": h["epochs"][0].pop("auc")}), "missing key(s) ['auc']"),
    (lambda h: h["epochs"][0].update({"tpr@fpr0.001": "0.5"}), ".epochs[0].tpr@fpr0.001 = '0.5': '0.5' is not of type 'number'"),
    (lambda h: h.update({"best_epoch": True}), ".best_epoch = True"),
    (lambda h: h["epochs"][0].update({"n_pos": 50.5}), ".epochs[0].n_pos = 50.5"),
    (lambda h: h["epochs"][0].update({"tpr@fpr1e-4_ci95": [0.1, "x"]}), ".epochs[0].tpr@fpr1e-4_ci95[1] = 'x'"),
    (lambda h: h.pop("fingerprint"), "missing key(s) ['fingerprint']"),
])
def test_a_renamed_or_mistyped_field_fails_naming_file_and_key(tmp_path, mutate, message):
    path, h = _history(tmp_path)
    mutate(h)
    path.write_text(json.dumps(h))
    with pytest.raises(C.ContractError) as exc:
        C.read(C.History, path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_unreadable_json_is_named(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    with pytest.raises(C.ContractError, match="metrics.json: not a readable Metrics JSON file"):
        C.read(C.Metrics, bad)
