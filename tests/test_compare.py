"""The comparison table and the written answers: computed from run files, verdicts follow the numbers."""

import json

import numpy as np
import pytest

from lensfinder.bench_metrics import bench_metrics
from lensfinder.gen2 import ablations, answers, compare, diagnose
from lensfinder.metrics import evaluate_scores
from lensfinder.tables import write_json
from lensfinder.training.config import RunConfig, run_config_record
from test_diagnose import saturating_val_scores


def test_deep_merge_and_ablation_runs():
    runs = {"gen3": {"dataset": "v5", "loader": {"num_workers": 1, "batch_size": 64}, "train": {"loss": "bce"}}}
    abl = ablations.ablation_runs(runs, {"baseline": "gen3", "reference": "gen2",
                                         "ablations": {"legacy": {"loader": {"legacy_sharding": True}}}})
    assert abl == {"gen3_with_legacy": {"dataset": "v5", "train": {"loss": "bce"},
                                        "loader": {"num_workers": 1, "batch_size": 64, "legacy_sharding": True}}}
    assert runs["gen3"]["loader"] == {"num_workers": 1, "batch_size": 64}  # the baseline is untouched
    with pytest.raises(KeyError, match="not a run"):
        ablations.ablation_runs(runs, {"baseline": "nope", "reference": "gen2"})


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Table II example (f): 56/70 - 48/80 -> 0.2000, interval 0.0524 to 0.3339
    lo, hi = compare.newcombe_interval(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)


def _write_run(root, name, vs, dtype, train_cfg=None):
    """history.json and metrics.json of a run whose validation logits are ``vs`` (the last
    epoch doubles as its test split)."""
    epochs = []
    for e, g in vs.groupby("epoch"):
        lab, lg = g["label"].to_numpy(), g["logit"].to_numpy()
        rec = {"epoch": int(e), "train_loss": 0.1 / (e + 1), "lr": 1e-3, "duplication_factor": 1.0,
               "samples_seen": 100 * (e + 1), "samples_seen_epoch": 100, "n_train": 100, "n_skipped_nonfinite": 0,
               "seconds": 1.0, "best_epoch": int(e), "mean_abs_logit_pos": float(np.abs(lg[lab == 1]).mean()),
               "mean_abs_logit_neg": float(np.abs(lg[lab == 0]).mean()), "max_logit_neg": float(lg[lab == 0].max()),
               **evaluate_scores(lab, lg, dtype)}
        if dtype != "logit_float32":
            rec["logit_float32"] = evaluate_scores(lab, lg, "logit_float32")
        epochs.append(rec)
    d = root / name
    d.mkdir(parents=True)
    cfg = RunConfig.from_dict(name, 0, {})
    write_json(run_config_record(cfg, "ds", 1, []), d / "run_config.json")
    (d / "history.json").write_text(json.dumps({"run": name, "fingerprint": cfg.fingerprint(), "data_fingerprint": "d",
                                                "best_epoch": epochs[-1]["epoch"], "stopped_early": False,
                                                "epochs": epochs}))
    last = vs[vs["epoch"] == vs["epoch"].max()]
    m = {"run": name, "split": "test", "fingerprint": cfg.fingerprint(), "data_fingerprint": "d",
         "checkpoint": str(d / "best.pt"), "checkpoint_sha256": "0" * 64, "checkpoint_epoch": int(vs["epoch"].max()),
         "metrics": evaluate_scores(last["label"], last["logit"], "logit_float32"),
         "negatives": {"n_negatives": int((last["label"] == 0).sum()), "test_split": int((last["label"] == 0).sum()),
                       "parent_test_region": 0, "min_resolvable_fpr": 1.0 / max(int((last["label"] == 0).sum()), 1)}}
    if dtype != "logit_float32":
        m[f"metrics_as_{dtype}"] = evaluate_scores(last["label"], last["logit"], dtype)
    (d / "metrics.json").write_text(json.dumps(m))
    last[["sample_id", "label", "logit"]].astype({"label": "int8", "logit": "float32"}).to_parquet(d / "scores.parquet")
    # the same rows stand in for the bench: lenses and ordinary LRGs (sky rows)
    bench = last[["sample_id", "label", "logit"]].astype({"label": "int8", "logit": "float32"}).assign(
        bench_kind=last["label"].astype("int8"), population="ordinary")
    bench.to_parquet(d / "bench_scores.parquet")
    write_json(bench_metrics(bench["label"], bench["logit"], bench["bench_kind"], bench["population"], {}, {}, 1e-3,
                             1e-3), d / "bench_metrics.json")
    return {"history": str(d / "history.json"), "metrics": str(d / "metrics.json"), "scores": [str(d / "scores.parquet")],
            "bench_scores": [str(d / "bench_scores.parquet")], "bench_metrics": [str(d / "bench_metrics.json")]}


def test_removing_the_bf16_cast_removes_the_cliff_in_the_table(tmp_path):
    vs = saturating_val_scores()
    rows = ablations.comparison_rows({"baseline": "gen3", "reference": "gen2", "ablations": {}})
    inputs = {"gen3": _write_run(tmp_path, "gen3", vs, "logit_float32"),
              "gen2": _write_run(tmp_path, "gen2", vs, "prob_bfloat16")}
    c = compare.compare_runs(rows, inputs, tmp_path / "c.json", tmp_path / "c.html", tmp_path / "c.png")
    by = {s["label"]: s for s in c["summary"]}
    gen2 = by["gen2 (every gen2 setting)"]
    no_cast = next(s for s in c["summary"] if s["role"] == "reference_float32")
    assert gen2["val_cliff_epochs"]["tpr@fpr0.001"] and gen2["tpr@fpr0.001"] == 0.0
    assert no_cast["val_cliff_epochs"]["tpr@fpr0.001"] == [] and no_cast["tpr@fpr0.001"] == 1.0
    assert gen2["delta_tpr@fpr0.001_significant"] and not no_cast["delta_tpr@fpr0.001_significant"]
    page = (tmp_path / "c.html").read_text()
    assert 'class="cliff"' in page and "without the prob_bfloat16 cast" in page


def _diag(tmp_path, name, vs, dtype):
    d = tmp_path / name
    manifest = vs[vs["epoch"] == 0][["sample_id"]].assign(twin_sample_id=-1, split="val")
    manifest.to_parquet(d / "manifest.parquet")
    (d / "audit.json").write_text(json.dumps({"dataset": "ds", "split_scheme": "sky", "galaxies_in_multiple_splits": 0,
                                              "paired_twins_across_splits": 0}))
    fb = {"dataset": "ds", "models": {"gradient_boosting": {"test": {"auc": 0.6, "tpr@fpr0.001": 0.01,
                                                                     "tpr@fpr0.001_ci95": [0.0, 0.05]}}}}
    (d / "fb.json").write_text(json.dumps(fb))
    vs.to_parquet(d / "val_scores.parquet")
    return diagnose.diagnose_run(d / "run_config.json", d / "history.json", d / "val_scores.parquet", d / "manifest.parquet", d / "audit.json",
                                 d / "fb.json", d / "diagnostics.json", d / "ties.png", d / "overfitting.png")


@pytest.mark.parametrize("saturating", [True, False])
def test_answer_to_the_cliff_question_follows_the_numbers(tmp_path, saturating):
    vs = saturating_val_scores()
    if not saturating:  # logits that never reach the bf16 saturation point: no cliff in either dtype
        vs["logit"] = (vs["logit"] / 20).astype(np.float32)
    rows = ablations.comparison_rows({"baseline": "gen3", "reference": "gen2", "ablations": {}})
    inputs = {"gen3": _write_run(tmp_path, "gen3", vs, "logit_float32"),
              "gen2": _write_run(tmp_path, "gen2", vs, "prob_bfloat16")}
    compare.compare_runs(rows, inputs, tmp_path / "c.json", tmp_path / "c.html", tmp_path / "c.png")
    _diag(tmp_path, "gen2", vs, "prob_bfloat16")
    _diag(tmp_path, "gen3", vs, "logit_float32")
    out = answers.write_answers(tmp_path / "c.json", tmp_path / "gen2/diagnostics.json",
                                tmp_path / "gen3/diagnostics.json", None, tmp_path / "a.html", tmp_path / "a.json")
    assert len(out) == 6 and all(a["evidence"] for a in out)
    q2 = out[1]["answer"]
    assert q2.startswith("Ties in the stored scores") == saturating
    page = (tmp_path / "a.html").read_text()
    assert str(tmp_path / "gen2/diagnostics.json") in page  # every number names its file


def test_question_one_reads_the_flux_shortcut_off_the_bench():
    from lensfinder.metrics import wilson_interval

    def pop(f, n=200):
        return {"n": n, **{f"fpr@tpr{t}": x for t, x in (("0.9", f), ("0.5", f / 2))},
                **{f"fpr@tpr{t}_ci95": list(wilson_interval(round(x * n), n)) for t, x in (("0.9", f), ("0.5", f / 2))}}

    def comparison(gen2_fpr):
        return {"reference": "gen2", "baseline": "gen3", "summary": [
            {"run": "gen3", "role": "baseline", "bench_populations": {"unlensed_source": pop(0.10)}},
            {"run": "gen2", "role": "reference", "bench_populations": {"unlensed_source": pop(gen2_fpr)}}]}

    worse, ev = answers.bench_shortcut(comparison(0.40))
    assert worse and len(ev) == 2 and "40.0%" in ev[0] and "10.0%" in ev[0]
    assert not answers.bench_shortcut(comparison(0.12))[0]  # inside the intervals: not called
