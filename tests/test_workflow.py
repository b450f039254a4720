"""The Snakemake workflow itself: lint, dry run of the default DAG, and a tiny real run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import DEMO, REPO, snakemake

pytestmark = pytest.mark.workflow


def planned_jobs(proc) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out[out.index("Job stats:"):].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[1] != "total"}


def test_lint_is_clean(tmp_path):
    proc = snakemake("--lint", cwd=tmp_path)
    assert "Congratulations" in proc.stdout + proc.stderr


def test_dry_run_of_default_dag(tmp_path):
    jobs = planned_jobs(snakemake("-n", cwd=tmp_path))
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    n_bricks = len(cfg["sky"]["mock"]["bricks"])
    assert jobs["mock_brick"] == n_bricks
    assert jobs["mock_sky"] == jobs["select_lrg"] == 3
    assert jobs["parent_lrg"] == 1 and jobs["all"] == 1
    assert jobs["train"] == jobs["evaluate"] == 1  # the default target trains gen3 only
    n_datasets = len(cfg["datasets"])
    assert jobs["manifest"] == jobs["stamps_report"] == jobs["gallery"] == jobs["injection_figure"] == n_datasets
    assert jobs["population_gallery"] == n_datasets
    assert jobs["inject"] == n_datasets * cfg["inject"]["shards"]
    # phase 4d for the datasets matched after injection; the flux baseline beside the evaluated run
    assert jobs["match_controls"] == sum(d["control"] == "matched_after_injection" for d in cfg["datasets"].values())
    assert jobs["flux_baseline"] == 1


def test_tiny_run_produces_sky_parent_sample_and_stamps(tiny_run):
    work, _ = tiny_run
    for ds in ("v4_paired", "v5_unpaired"):
        d = work / "results/datasets" / ds
        audit = json.loads((d / "manifest_audit.json").read_text())
        report = json.loads((d / "stamps_report.json").read_text())
        assert report["n_written"] > 0 and report["n_written"] + report["n_skipped"] == audit["n_rows"]
        assert len(list((d / "stamps").glob("part-*-of-2.parquet"))) == 2
        assert (d / "gallery.png").stat().st_size > 10_000 and (d / "injection.png").stat().st_size > 10_000
        assert report["n_positives_written"] > 0
        # the tiny config's cut holds for every labelled lens: theta_E >= 0.5 FWHM_r (tests/data/config_tiny.yaml)
        st = pd.concat([pq.read_table(p, columns=["label", "theta_e", "psfsize_r"]).to_pandas()
                        for p in (d / "stamps").glob("part-*-of-2.parquet")])
        pos = st[st["label"] == 1]
        assert len(pos) == report["n_positives_written"] and (pos["theta_e"] >= 0.5 * pos["psfsize_r"]).all()
    assert json.loads((work / "results/datasets/v4_paired/manifest_audit.json").read_text())["leaky"]
    hist = json.loads((work / "results/runs/gen3/history.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["epochs"][0]["duplication_factor"] == 1.0
    metrics = json.loads((work / "results/runs/gen3/metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["metrics"]["score_dtype"] == "logit_float32"
    assert (work / "results/runs/gen3/roc.png").exists() and not (work / "results/runs/gen2").exists()
    assert not json.loads((work / "results/datasets/v5_unpaired/manifest_audit.json").read_text())["leaky"]
    # phase 4d: gen3 trains on the matched shards; metrics name populations and the flux baseline
    d = work / "results/datasets/v5_unpaired"
    matching = json.loads((d / "matching_audit.json").read_text())
    assert len(list((d / "matched").glob("part-*-of-2.parquet"))) == 2
    assert sum(c["controls"] for c in matching["per_split"].values()) > 0
    stamps = json.loads((work / "results/runs/gen3/run_config.json").read_text())["stamps"]
    assert stamps == [f"results/datasets/v5_unpaired/matched/part-{i}-of-2.parquet" for i in (1, 2)]
    assert metrics["negatives_by_population"]["populations"] and "gradient_boosting" in metrics["flux_baseline_test"]
    assert (work / "results/runs/gen3/top_negatives.png").exists() and (d / "populations.png").exists()
    # the test region's unused parent galaxies are scored as negatives too, counted apart
    pn = json.loads((d / "parent_negatives/audit.json").read_text())
    reports = [json.loads(p.read_text()) for p in (d / "parent_negatives").glob("part-*-of-2.report.json")]
    assert len(reports) == 2 and sum(r["n_rows"] for r in reports) == pn["n_selected"] > 0
    neg = metrics["negatives"]
    # (on this 2-brick sky, since the bench region took its share, the few left can all lie
    # at brick edges: counted, possibly zero)
    assert neg["parent_test_region"] == sum(r["n_written"] for r in reports)
    assert neg["test_split"] == metrics["metrics_test_split_only"]["n_neg"]
    assert metrics["metrics"]["n_neg"] == neg["n_negatives"] == neg["test_split"] + neg["parent_test_region"]
    scores = pq.read_table(work / "results/runs/gen3/scores.parquet").to_pandas()
    assert scores["from_parent"].sum() == neg["parent_test_region"] and (scores.loc[scores["from_parent"], "label"] == 0).all()
    parent = pq.read_table(work / "results/phase3/parent_lrg.parquet")
    assert parent.num_rows > 20
    assert len(list((work / "results/mock_sky/sweep").glob("sweep-*.fits"))) == 2
    assert len(list((work / "results/mock_sky/coadd").rglob("*.fits.fz"))) == 2 * 6
    assert (work / "results/phase3/selection_summary.json").exists()
    assert list((work / "results/logs").rglob("*.log")) and list((work / "results/benchmarks").rglob("*.tsv"))


def test_rerun_is_a_no_op_and_phase3_param_reruns_phase3_only(tiny_run, tmp_path):
    work, config = tiny_run
    assert planned_jobs(snakemake("-n", "--configfile", DEMO, str(config), cwd=work)) == {}
    changed = yaml.safe_load(config.read_text())
    changed["select"]["maskbits"] = ["BRIGHT", "GALAXY"]
    cfg2 = tmp_path / "changed.yaml"
    cfg2.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(cfg2), cwd=work))
    assert "mock_brick" not in jobs and "mock_sky" not in jobs
    assert jobs["select_lrg"] == 2 and jobs["parent_lrg"] == 1
    changed["select"]["maskbits"] = ["BRIGHT", "GALAXY", "CLUSTER"]
    changed["datasets"]["v5_unpaired"]["priors"] = {"theta_e": [1.0, 2.5]}
    cfg2.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(cfg2), cwd=work))
    # a prior of one dataset reruns phases 4a/4c of that dataset only
    # (gen3 trains on v5_unpaired, so it retrains and re-evaluates; gen2 is untouched; the
    # parent negatives exclude that dataset's test stamps, so they are chosen and cut again)
    assert jobs == {"manifest": 1, "inject": 2, "stamps_report": 1, "gallery": 1, "injection_figure": 1,
                    "match_controls": 1, "population_gallery": 1, "flux_baseline": 1, "train": 1, "evaluate": 1,
                    "bench_score": 1, "parent_negatives": 1, "parent_negative_stamps": 2, "all": 1}
    changed["datasets"]["v5_unpaired"].pop("priors")
    changed["sky"]["mock"]["detect_snr"] = 6.5
    cfg2.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(cfg2), cwd=work))
    assert jobs["mock_brick"] == 2 and jobs["select_lrg"] == 2


def test_the_bench_reruns_what_it_should_and_nothing_upstream(tiny_run, tmp_path):
    """Issue 27 item 6: a run's setting rescores that run alone on the bench; the bench's priors
    rebuild the bench and rescore every run, nothing upstream; its scoring settings only rescore."""
    work, config = tiny_run  # the default target: gen3 trained, evaluated and scored on the bench
    cfg2 = tmp_path / "changed.yaml"

    def plan(change):
        changed = yaml.safe_load(config.read_text())
        change(changed)
        cfg2.write_text(yaml.safe_dump(changed))
        return planned_jobs(snakemake("-n", "--configfile", DEMO, str(cfg2), cwd=work))

    gen3 = plan(lambda c: c["runs"]["gen3"]["train"].update(epochs=3))
    assert gen3 == {"run_config": 1, "train": 1, "evaluate": 1, "bench_score": 1, "all": 1}
    priors = plan(lambda c: c["bench"].update(priors={"theta_e_model": "velocity_dispersion", "source_mag_r": [21.0, 24.0]}))
    assert priors == {"bench_manifest": 1, "bench_stamps": 2, "bench_score": 1, "all": 1}
    scoring = plan(lambda c: c["bench"].update(prevalence=1e-4, selection_fpr=0.1))
    assert scoring == {"bench_score": 1, "all": 1}
    # the render batch is a memory setting (stamps byte-identical whatever it is): no rerun (issue 32)
    assert plan(lambda c: c["inject"].update(batch=7)) == {}


def test_a_learning_curve_trains_nested_shares_and_scores_each_on_the_bench(tiny_run, tmp_path):
    """Issue 31 item 2: `learning_curve` adds gen3 on half its training split, plans only
    that run (trained, scored on the bench) and the curve -- nothing upstream, gen3 as it
    is -- and writes both points with their training lenses, bench metrics and epochs."""
    work, config = tiny_run
    cfg = yaml.safe_load(config.read_text())
    cfg["learning_curve"] = {"run": "gen3", "fractions": [0.5]}
    lc = tmp_path / "lc.yaml"
    lc.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake("-n", "learning_curve", "--configfile", DEMO, str(lc), cwd=work))
    assert jobs == {"run_config": 1, "train": 1, "bench_score": 1, "learning_curve": 1}, jobs
    snakemake("--cores", "2", "learning_curve", "--configfile", DEMO, str(lc), cwd=work)
    curve = json.loads((work / "results/learning_curve/learning_curve.json").read_text())
    half, whole = curve["points"]
    assert (half["fraction"], whole["fraction"], half["runs"], whole["runs"]) == (0.5, 1.0, ["gen3_lc1"], ["gen3"])
    assert 0 < half["n_train_lenses"][0] < whole["n_train_lenses"][0]
    assert half["n_train_samples"][0] < 0.7 * whole["n_train_samples"][0]
    assert half["bench_n_pos"] == whole["bench_n_pos"] > 0 and all(0 <= v <= 1 for v in half["bench"]["auc"])
    assert len(half["val_by_epoch"][0]) >= 1 and (work / "results/learning_curve/learning_curve.png").stat().st_size > 0


def test_a_lost_stamp_shard_is_rebuilt_by_the_next_run(tiny_run):
    """Issue 32 item 4: deleting a shard the run trained on makes `train_gen3` rebuild it
    (before: "Nothing to be done" with a listed product missing)."""
    work, config = tiny_run
    shard = work / "results/datasets/v5_unpaired/matched/part-2-of-2.parquet"
    data, st = shard.read_bytes(), shard.stat()
    shard.unlink()
    try:
        jobs = planned_jobs(snakemake("-n", "train_gen3", "--configfile", DEMO, str(config), cwd=work))
        assert jobs.get("match_controls") == 1, jobs
        jobs = planned_jobs(snakemake("-n", "stamps", "--configfile", DEMO, str(config), cwd=work))
        assert jobs.get("match_controls") == 1, jobs
    finally:
        shard.write_bytes(data)
        os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # as it was: later plans see no change


def test_the_tiny_bench_holds_no_dataset_galaxy(tiny_run):
    work, _ = tiny_run
    bench = pq.read_table(work / "results/bench/manifest.parquet", columns=["galaxy_id", "bench_kind"]).to_pandas()
    assert (bench["bench_kind"] == 0).sum() > 0 and (bench["bench_kind"] == 1).sum() > 0
    for ds in ("v4_paired", "v5_unpaired"):
        m = pq.read_table(work / f"results/datasets/{ds}/manifest.parquet", columns=["galaxy_id"]).to_pandas()
        assert not set(m["galaxy_id"]) & set(bench["galaxy_id"]), ds
        neg = work / f"results/datasets/{ds}/parent_negatives/manifest.parquet"
        if neg.exists():
            assert not set(pq.read_table(neg, columns=["galaxy_id"])["galaxy_id"].to_pylist()) & set(bench["galaxy_id"])


def test_real_dr10_source_reads_the_same_files(tiny_run, tmp_path):
    """Point source: dr10 at the mock sky's files: the real-data path gives the same sample."""
    work, _ = tiny_run
    sky = work / "results/mock_sky"
    cfg = {
        "results_dir": "out",
        "sky": {"source": "dr10", "dr10": {"sweep_dir": str(sky / "sweep"), "coadd_dir": str(sky / "coadd"),
                                           "photoz_dir": str(sky / "sweep-photo-z")}},
        "select": {"chunk_rows": 50},
    }
    (tmp_path / "dr10.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(tmp_path / "dr10.yaml"), cwd=tmp_path))
    assert "mock_brick" not in jobs and jobs["select_lrg"] == 2
    snakemake("parent_lrg", "--cores", "2", "--configfile", DEMO, str(tmp_path / "dr10.yaml"), cwd=tmp_path)
    ours = pq.read_table(tmp_path / "out/phase3/parent_lrg.parquet").to_pandas()
    assert ours.equals(pq.read_table(work / "results/phase3/parent_lrg.parquet").to_pandas())  # NaN z_spec alike
    assert ours.z_lens.notna().all()
    del cfg["sky"]["dr10"]["photoz_dir"]  # the demo's priors compute theta_E from each lens's redshift
    (tmp_path / "dr10.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--configfile", DEMO, str(tmp_path / "dr10.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "needs lens redshifts: set sky.dr10.photoz_dir" in proc.stdout + proc.stderr


def test_compare_full_stacks_on_the_real_data_config(mock_sky, tmp_path):
    """config/compare_full.yaml carries a mock-sky section for the large mock; stacked on
    config/dr10.yaml (source: dr10) that section is ignored and the plan is the comparison's."""
    dr10 = tmp_path / "dr10"
    (dr10 / "south/sweep").mkdir(parents=True)
    (dr10 / "south/sweep/10.1").symlink_to(mock_sky.sweep_dir)
    (dr10 / "south/sweep/10.1-photo-z").symlink_to(mock_sky.photoz[0].parent)
    (dr10 / "south/coadd").symlink_to(mock_sky.coadd_dir)
    cmd = ["-n", "compare", "--configfile", str(REPO / "config/dr10.yaml"), str(REPO / "config/compare_full.yaml")]
    env_cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), *cmd]
    proc = subprocess.run(env_cmd, capture_output=True, text=True, env={**os.environ, "LEGACY_SURVEY_DIR": str(dr10)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = planned_jobs(proc)
    assert "mock_brick" not in jobs and jobs["compare"] == 1


def test_invalid_config_is_rejected_at_start(tmp_path):
    (tmp_path / "bad.yaml").write_text("sky: {source: moon}\n")
    proc = snakemake("-n", "--configfile", DEMO, str(tmp_path / "bad.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "moon" in proc.stdout + proc.stderr


def test_missing_sweep_dir_is_a_clear_error(tmp_path):
    cfg = {"sky": {"source": "dr10", "dr10": {"sweep_dir": str(tmp_path / "nope"), "coadd_dir": "x"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--configfile", DEMO, str(tmp_path / "c.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "sweep_dir" in proc.stdout + proc.stderr and "does not exist" in proc.stdout + proc.stderr


def test_bad_sweep_fails_the_job_with_the_file_named(tiny_run, tmp_path):
    work, _ = tiny_run
    sweeps = tmp_path / "sweep"
    sweeps.mkdir()
    good = sorted((work / "results/mock_sky/sweep").glob("*.fits"))[0]
    data = good.read_bytes()
    (sweeps / good.name).write_bytes(data[: len(data) // 2])
    cfg = {"results_dir": "out", "sky": {"source": "dr10", "dr10": {
        "sweep_dir": str(sweeps), "coadd_dir": "x", "photoz_dir": str(work / "results/mock_sky/sweep-photo-z")}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake("--cores", "1", "--configfile", DEMO, str(tmp_path / "c.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    log = (tmp_path / f"out/logs/select_lrg/{good.stem}.log").read_text()
    assert f"{good.name}: truncated" in log
    assert not (tmp_path / "out/phase3/parent_lrg.parquet").exists()


def test_snakemake_retries_resume_an_interrupted_training(tiny_run, tmp_path):
    """Each attempt is interrupted after 2 steps (as by SIGTERM) and exits 75; Snakemake's
    --retries resubmits, each retry resumes from ckpt/last.pt, and the final history
    equals the uninterrupted one."""
    work, config = tiny_run
    shutil.copytree(work / "results", tmp_path / "results", ignore=shutil.ignore_patterns("runs"))
    override = yaml.safe_load(config.read_text())
    override["runs"]["gen3"]["train"]["stop_after_steps"] = 2
    (tmp_path / "interrupting.yaml").write_text(yaml.safe_dump(override))
    snakemake("train_gen3", "--cores", "2", "--retries", "10", "--configfile", DEMO, str(config),
              str(tmp_path / "interrupting.yaml"), cwd=tmp_path)
    attempts = (tmp_path / "results/logs/train/gen3.log").read_text()
    ref = json.loads((work / "results/runs/gen3/history.json").read_text())["epochs"]
    got = json.loads((tmp_path / "results/runs/gen3/history.json").read_text())["epochs"]
    assert "training from epoch 0 step 2" in attempts or "training from epoch 1" in attempts
    for key in ("train_loss", "auc", "samples_seen"):
        assert [round(h[key], 6) for h in ref] == [round(h[key], 6) for h in got], key


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_compare_report_and_candidates_on_the_tiny_config(tiny_run):
    """In a directory that already holds the tiny run's results/, a second results_dir given
    by --config: the report embeds that run's files and settings only."""
    work, config = tiny_run
    snakemake("--cores", "2", "compare", "report", "--configfile", DEMO, str(config), "--config", "results_dir=results_B",
              cwd=work)
    res = work / "results_B"
    embedded = json.loads(re.search(r"var results = (\{.*?\});\n", (res / "report.html").read_text()).group(1))
    assert embedded and all(path.startswith("results_B/") for path in embedded), sorted(embedded)[:5]
    assert "'epochs': 2," in (res / "report.html").read_text()  # the tiny config's runs, not the demo's 12 epochs
    assert "'epochs': 12," not in (res / "report.html").read_text()
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())["compare"]
    c = json.loads((res / "compare/comparison.json").read_text())
    assert set(c["runs"]) == {"gen3", "gen2", *(f"gen3_with_{f}" for f in cfg["ablations"])}
    roles = [s["role"] for s in c["summary"]]
    assert roles[0] == "baseline" and "reference_float32" in roles  # gen2 ranked without its bf16 cast
    for s in c["summary"][1:]:
        lo, hi = s["delta_tpr@fpr0.001_ci95"]
        assert lo <= hi and 0 < s["delta_tpr@fpr0.001_p"] <= s["delta_tpr@fpr0.001_p_holm"] <= 1
        newcombe = s["delta_tpr@fpr0.001_newcombe_ci95"]
        assert s["delta_tpr@fpr0.001_significant"] == (s["delta_tpr@fpr0.001_p_holm"] < 0.05
                                                       and (newcombe[0] > 0 or newcombe[1] < 0))
    # the tiny config trains gen2 with two seeds: gen2 and gen2_rep2, summarised together
    assert c["statistics"]["seeds"]["gen2"] == 2 and (res / "runs/gen2_rep2/scores.parquet").exists()
    # each replicate trains with its own seed (runs.gen2.seeds), not the config's
    seeds = [json.loads((res / f"runs/{r}/run_config.json").read_text())["seed"] for r in ("gen2", "gen2_rep2")]
    assert seeds == [20261124, 7]
    losses = [json.loads((res / f"runs/{r}/history.json").read_text())["epochs"][0]["train_loss"]
              for r in ("gen2", "gen2_rep2")]
    assert losses[0] != losses[1]
    gen2 = next(s for s in c["summary"] if s["role"] == "reference")
    per_seed = gen2["auc_seeds"]["per_seed"]
    assert gen2["n_seeds"] == 2 and len(per_seed) == 2 and gen2["auc"] == pytest.approx(sum(per_seed) / 2)
    # the main table is on the bench: every run on the same rows, gen2's float32 row agreeing
    # with its bench metrics; the own-test-split numbers stay beside it
    assert len({(s["n_pos"], s["n_neg"]) for s in c["summary"]}) == 1
    assert all(s.get("delta_tpr@fpr0.001_paired", True) for s in c["summary"])
    gen2_f32 = next(s for s in c["summary"] if s["role"] == "reference_float32")
    bench = json.loads((res / "runs/gen2/bench_metrics.json").read_text())["sky_prevalence"]
    assert gen2_f32["auc_seeds"]["per_seed"][0] == pytest.approx(bench["auc"])
    assert gen2["own_test"]["n_pos"] == c["runs"]["gen2"]["test"]["metrics_as_prob_bfloat16"]["n_pos"]
    answers = json.loads((res / "report/answers.json").read_text())
    assert len(answers) == 6 and all("results_B/" in " ".join(a["evidence"]) for a in answers)
    d = json.loads((res / "runs/gen2/diagnostics.json").read_text())
    assert {t["score_dtype"] for t in d["ties"]} == {"prob_bfloat16", "logit_float32"}
    assert d["memorisation"]["applicable"] and d["duplication_factor"]["per_epoch"][0] > 1.5  # paired; x2 workers
    assert json.loads((res / "runs/gen3/diagnostics.json").read_text())["memorisation"]["applicable"] is False
    user = json.loads((res / "diagnostics/gen2_history_analysis.json").read_text())
    assert user["cliffs"] == {"tpr@fpr1e-4": [5], "tpr@fpr0.001": [7]}
    summ = json.loads((res / "candidates/summary.json").read_text())
    n_parent = pq.read_metadata(res / "phase3/parent_lrg.parquet").num_rows
    stamps = json.loads((res / "candidates/stamps/part-1-of-1.report.json").read_text())
    assert summ["n_parent"] == stamps["n_written"] == n_parent - stamps["n_skipped"]
    assert summ["mock_sky"] and "by construction" in summ["note"]
    assert (res / "candidates/candidates.csv").read_text().startswith("rank,galaxy_id,ra,dec,logit,brickname,population")
    report = res / "report.html"
    text = report.read_text()
    for category in ("Answers", "Comparison", "Diagnostics", "Candidates", "Phase 3: LRG selection"):
        assert category in text, category
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: the report's render check needs Debian's chromium (.ci/run installs it)")
    png = work / "shot.png"
    subprocess.run([str(REPO / "tools/report_screenshot.sh"), str(report), str(png)], check=True, timeout=300)
    from matplotlib.image import imread
    img = imread(png)
    assert img.shape[0] >= 900 and img.std() > 0.05  # something was drawn, not a blank page
    dom = (work / "shot.dom.html").read_text()
    app = dom[dom.index('<div id="app">'):]
    assert app.startswith('<div id="app"><div') and "<nav" in app  # React rendered the report's page
    assert ">Answers<" in app and ">Comparison<" in app           # with our result categories


def test_bad_gen2_history_fails_its_rule_with_one_clear_line(tmp_path):
    bad = tmp_path / "history.json"
    bad.write_text('[{"epoch": 0, "tpr@fpr1e-4": 0.7, "tpr@fpr0.001": 0.8}, {"epoch": 1, "tpr@fpr1e-4": NaN}]')
    cfg = tmp_path / "diag.yaml"
    cfg.write_text(yaml.safe_dump({"diagnose": {"gen2_history": str(bad), "gen2_n_neg": 1000}}))
    proc = snakemake("--cores", "1", "results/diagnostics/gen2_history_analysis.json", "--configfile", DEMO, str(cfg),
                     cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"gen2_history: {bad}: epoch 1: 'tpr@fpr1e-4' is nan" in out
    assert "Traceback" not in (tmp_path / "results/logs/diagnose/gen2_history.log").read_text()


def _copy_run(work, tmp_path):
    """A copy of a finished workflow directory, Snakemake's metadata included (it holds the
    params each output was made with, which decide what a changed setting reruns), at the
    same depth as the original: inputs shipped with lensfinder are workdir-relative paths."""
    dest = tmp_path.parent / f"{tmp_path.name}_copy"
    shutil.copytree(work, dest, ignore=shutil.ignore_patterns("locks", "incomplete", "shot*"))
    return dest


def _stacked(tmp_path, config, edit) -> str:
    cfg = yaml.safe_load(config.read_text())
    edit(cfg)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_changed_run_setting_retrains_reevaluates_and_records_the_new_fingerprint(tiny_run, tmp_path):
    work, config = tiny_run
    run = _copy_run(work, tmp_path)
    old = json.loads((run / "results/runs/gen3/metrics.json").read_text())
    changed = _stacked(tmp_path, config, lambda c: c["runs"]["gen3"].setdefault("train", {}).update(lr=5e-4))
    jobs = planned_jobs(snakemake("-n", "train_gen3", "--configfile", DEMO, changed, cwd=run))
    assert jobs == {"run_config": 1, "train": 1, "evaluate": 1, "bench_score": 1, "train_gen3": 1}
    snakemake("train_gen3", "--cores", "2", "--configfile", DEMO, changed, cwd=run)
    rc = json.loads((run / "results/runs/gen3/run_config.json").read_text())
    assert rc["run"]["train"]["lr"] == 5e-4 and rc["fingerprint"] != old["fingerprint"]
    for product in ("metrics.json", "history.json"):
        assert json.loads((run / "results/runs/gen3" / product).read_text())["fingerprint"] == rc["fingerprint"]
    assert "the run configuration changed" in (run / "results/logs/train/gen3.log").read_text()
    assert planned_jobs(snakemake("-n", "train_gen3", "--configfile", DEMO, changed, cwd=run)) == {}
    # and back: the first configuration is trained again, never reported from stale files
    jobs = planned_jobs(snakemake("-n", "train_gen3", "--configfile", DEMO, str(config), cwd=run))
    assert jobs == {"run_config": 1, "train": 1, "evaluate": 1, "bench_score": 1, "train_gen3": 1}


def _held(lock) -> bool:
    """Whether some process holds ``lock`` (a run's train.lock) exclusively."""
    import fcntl
    if not lock.exists():
        return False
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_a_second_train_job_beside_a_live_one_fails_and_nothing_published_is_lost(tiny_run, tmp_path):
    """Issue 32 item 1, the interleaving as found: gen3 trains in one invocation; a short
    target run to completion beside it makes Snakemake 9 drop every lock of the directory;
    asking for gen3's history again starts a second train job. It must fail at once naming
    the first trainer (before reading its live checkpoint), and the first must publish
    complete products that no later plan wants to rebuild."""
    work, config = tiny_run
    run = _copy_run(work, tmp_path)
    epochs = 3
    changed = _stacked(tmp_path, config, lambda c: c["runs"]["gen3"].setdefault("train", {}).update(epochs=epochs))
    history = "results/runs/gen3/history.json"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(run), history,
           "--cores", "2", "--configfile", DEMO, changed]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock, t0 = run / "results/runs/gen3/train.lock", time.monotonic()
    try:
        while not _held(lock):
            assert first.poll() is None and time.monotonic() - t0 < 300, "the first trainer never started"
            time.sleep(0.05)
        while not lock.read_text():
            time.sleep(0.05)
        trainer = json.loads(lock.read_text())["pid"]
        os.kill(trainer, signal.SIGSTOP)  # it keeps the lock, and the two start-ups beside it take their time
        try:
            snakemake("results/datasets/v5_unpaired/flux_baseline.json", "--forcerun", "flux_baseline",
                      "--cores", "1", "--configfile", DEMO, changed, cwd=run)
            second = snakemake(history, "--cores", "1", "--configfile", DEMO, changed, cwd=run, check=False)
        finally:
            os.kill(trainer, signal.SIGCONT)
        out = second.stdout + second.stderr
        assert second.returncode != 0 and "Error in rule train" in out, out[-3000:]
        assert f"already being trained by pid {trainer}" in (run / "results/logs/train/gen3.log").read_text()
        first_out, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, first_out[-3000:]
    rc = json.loads((run / "results/runs/gen3/run_config.json").read_text())
    hist = json.loads((run / history).read_text())
    assert hist["fingerprint"] == rc["fingerprint"] and len(hist["epochs"]) == epochs
    state = torch.load(run / "results/runs/gen3/best.pt", weights_only=True)
    assert state["fingerprint"] == rc["fingerprint"]
    assert planned_jobs(snakemake("-n", history, "--configfile", DEMO, changed, cwd=run)) == {}


def _counts(run, dataset, shards, stamps="stamps"):
    """Rows per split of the current shards (phase 4c's ``stamps`` or phase 4d's
    ``matched``) of one dataset, and their number of rows; checks 4c's report against the
    manifest."""
    d = run / "results/datasets" / dataset
    parts = [d / f"{stamps}/part-{i}-of-{shards}.parquet" for i in range(1, shards + 1)]
    split = pq.read_table(parts, columns=["split"]).column("split").to_pylist()
    report = json.loads((d / "stamps_report.json").read_text())
    assert report["n_written"] + report["n_skipped"] == pq.read_metadata(d / "manifest.parquet").num_rows
    return {s: split.count(s) for s in ("train", "val", "test")}, len(split)


def test_changing_the_shard_count_back_and_forth_never_reads_stale_shards(tiny_run, tmp_path):
    work, config = tiny_run
    run = _copy_run(work, tmp_path)
    targets = ["train_gen3", "results/datasets/v5_unpaired/flux_baseline.json"]
    for shards in (3, 2):
        changed = _stacked(tmp_path, config, lambda c: c["inject"].update(shards=shards))
        snakemake(*targets, "--cores", "2", "--configfile", DEMO, changed, cwd=run)
        by_split, n_written = _counts(run, "v5_unpaired", shards, "matched")  # gen3 trains on phase 4d's shards
        for sub in ("stamps", "matched"):  # stale ones stay
            assert len(list((run / "results/datasets/v5_unpaired" / sub).glob("part-*-of-*.parquet"))) == 5
        hist = json.loads((run / "results/runs/gen3/history.json").read_text())["epochs"]
        assert all(e["samples_seen_epoch"] == e["n_train"] == by_split["train"] for e in hist)
        assert hist[0]["n_pos"] + hist[0]["n_neg"] == by_split["val"]
        metrics = json.loads((run / "results/runs/gen3/metrics.json").read_text())
        m = metrics["metrics_test_split_only"]
        assert m["n_pos"] + m["n_neg"] == by_split["test"]
        parent = [json.loads(p.read_text()) for p in
                  (run / "results/datasets/v5_unpaired/parent_negatives").glob(f"part-*-of-{shards}.report.json")]
        assert len(parent) == shards and metrics["negatives"]["parent_test_region"] == sum(r["n_written"] for r in parent)
        fb = json.loads((run / "results/datasets/v5_unpaired/flux_baseline.json").read_text())
        assert fb["n_rows"] == n_written and fb["n_train"] == by_split["train"]


def test_a_typo_in_a_metric_name_fails_before_any_job_with_the_valid_names(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({"runs": {"gen3": {"dataset": "v5_unpaired",
                                                     "train": {"early_stopping": {"metric": "tpr@fpr1e-3"}}}}}))
    proc = snakemake("--cores", "1", "--configfile", DEMO, str(bad), cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "runs.gen3.train.early_stopping.metric: 'tpr@fpr1e-3' is not one of" in out
    assert "'tpr@fpr0.001'" in out and "'tpr@fpr1e-4'" in out
    assert not (tmp_path / "results").exists()  # nothing ran


@pytest.mark.parametrize("change, message", [
    ({"runs": {"gen3": {"dataset": "v5_unpaired", "model": {"name": "convnext_bogus"}}}},
     "runs.gen3.model.name: 'convnext_bogus' is not a known model"),
    ({"runs": {"gen3": {"dataset": "v5_unpaired", "loader": {"asinh_scale": {"g": 0, "r": 0, "z": 0}}}}},
     "runs.gen3.loader.asinh_scale"),
    ({"runs": {"gen3": {"dataset": "v5_unpaired", "train": {"lr": 1.0e-4, "min_lr": 1.0e-3}}}}, "runs.gen3.train.min_lr"),
    ({"sky": {"mock": {"psf_fwhm_range": [1.6, 1.0]}}}, "sky.mock.psf_fwhm_range"),
    ({"inject": {"zeropoint": {"g": 26.6, "r": 26.8, "z": 26.5, "i": 26.7}}}, "inject.zeropoint"),
    ({"datasets": {"v5_unpaired": {"priors": {"theta_e": [3.0, 0.8]}}}}, "priors.theta_e"),
])
def test_an_impossible_setting_fails_before_any_job_naming_its_key(tmp_path, change, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(change))
    proc = snakemake("-n", "--configfile", DEMO, str(bad), cwd=tmp_path, check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_run_on_an_unknown_dataset_fails_at_start_naming_the_datasets(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({"runs": {"gen3": {"dataset": "v5_unpaird"}}}))
    proc = snakemake("-n", "--configfile", DEMO, str(bad), cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "runs.gen3.dataset: 'v5_unpaird' is not a dataset of this config (datasets: v4_paired, v5_unpaired)" in out
    assert "InputFunctionException" not in out


def test_the_schema_sets_no_default_that_the_package_owns():
    """Run, dataset, prior, injection and selection defaults live in the package's
    dataclasses and constants; the schema only checks those sections."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())

    def defaults(node, path=""):
        if isinstance(node, dict):
            found = [path] if "default" in node and path else []
            return found + [d for k, v in node.items() for d in defaults(v, f"{path}/{k}")]
        if isinstance(node, list):
            return [d for i, v in enumerate(node) for d in defaults(v, f"{path}/{i}")]
        return []

    owned = ("/properties/runs", "/properties/datasets", "/properties/select", "/definitions/inject")
    assert [d for d in defaults(schema) if d.startswith(owned)] == []


def test_a_sky_split_the_mock_footprint_cannot_fill_fails_at_start(tmp_path):
    coarse = tmp_path / "coarse.yaml"
    coarse.write_text(yaml.safe_dump({"datasets": {"v5_unpaired": {"control": "unpaired_matched", "split": "sky",
                                                                    "healpix_nside": 2}}}))  # 29 deg pixels
    proc = snakemake("-n", "--configfile", DEMO, str(coarse), cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "datasets.v5_unpaired: split(s)" in out and "raise healpix_nside" in out


def test_the_pipeline_stands_without_the_gen2_study(tmp_path):
    """A config with no `compare` section: the Snakefile does not include gen2.smk, the
    report's DAG holds phases 3-5, evaluation and candidates only, and no pipeline module
    imports lensfinder.gen2."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg.pop("compare")
    cfg.pop("diagnose")
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    plan = planned_jobs(snakemake("-n", "report", "--configfile", str(tmp_path / "pipeline.yaml"), cwd=tmp_path))
    assert {"train", "evaluate", "candidates", "flux_baseline", "report"} <= set(plan)
    assert not set(plan) & {"diagnose", "gen2_history", "compare", "answers"}, plan
    assert plan["train"] == len(cfg["runs"])  # the configured runs, no ablations
    code = ("import sys, importlib, pathlib, lensfinder\n"
            "root = pathlib.Path(lensfinder.__file__).parent\n"
            "mods = ['.'.join(('lensfinder',) + p.relative_to(root).with_suffix('').parts) for p in root.rglob('*.py')\n"
            "        if 'gen2' not in p.relative_to(root).parts]\n"
            "[importlib.import_module(m.removesuffix('.__init__')) for m in mods]\n"
            "print(sorted(m for m in sys.modules if m.startswith('lensfinder.gen2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_phase_4c_and_candidates_run_from_the_cutout_service_without_local_coadds(tmp_path, mock_sky, server):
    """sky.cutouts.source: service on a DR10 tree that holds sweeps only: the imitation
    viewer (tests/viewer.py) serves the pixels, Lanczos-3 resampled from coadds that the
    workflow never sees. Phases 4c and candidates run end to end; every stamp is marked
    resampled; a rerun asks the service nothing (cache)."""
    from viewer import FakeViewer
    from conftest import SMALL_SKY, TINY
    FakeViewer.sky = (mock_sky.coadd_dir, SMALL_SKY.bricks)
    sweeps = tmp_path / "dr10/south/sweep/10.1"
    shutil.copytree(mock_sky.sweep_dir, sweeps)
    shutil.copytree(mock_sky.photoz[0].parent, sweeps.parent / "10.1-photo-z")
    svc = tmp_path / "service.yaml"
    svc.write_text(yaml.safe_dump({"sky": {"source": "dr10", "dr10": {"sweep_dir": str(sweeps),
                                                                      "photoz_dir": str(sweeps.parent / "10.1-photo-z")},
                                           "cutouts": {"source": "service", "url": server + "cutout.fits",
                                                       "psf_url": server + "coadd-psf/", "min_interval_s": 0.0}},
                                   "datasets": {"v5_unpaired": {"max_galaxies": 60}},  # leaves a background
                                   "real_lenses": {"lenses": "lenses.csv", "n_random": 40, "n_boot": 50}}))
    # "known lenses": six mock LRGs inside the sky whose stamps are whole (pixels exist only
    # around LRG-like galaxies; brick edges and no-coverage stripes cut others), one far
    # outside it (left out by the footprint)
    from lensfinder.sky.coadds import CoaddBrick
    cat = pq.read_table(mock_sky.catalog_dir / f"{SMALL_SKY.bricks[0]}.parquet", columns=["RA", "DEC", "MOCK_POP"]).to_pandas()
    cat = cat[cat.MOCK_POP == "lrg"].reset_index(drop=True)
    whole = CoaddBrick(mock_sky.coadd_dir, SMALL_SKY.bricks[0]).cutouts(cat["RA"].to_numpy(), cat["DEC"].to_numpy()).flags == 0
    cat = cat[whole].reset_index(drop=True)
    lenses = pd.DataFrame({"name": [f"L{i}" for i in range(7)], "ra": [*cat["RA"][:6], 10.0],
                           "dec": [*cat["DEC"][:6], -5.0], "grading": ["confident"] * 3 + ["probable"] * 4})
    lenses.to_csv(tmp_path / "lenses.csv", index=False)
    args = ("--cores", "2", "candidates", "real_lenses", "--configfile", DEMO, str(TINY), str(svc))
    snakemake(*args, cwd=tmp_path)
    res = tmp_path / "results"
    real = json.loads((res / "real_lenses/gen3/summary.json").read_text())
    assert real["targets"]["lenses"]["n_in_footprint"] == 6 and real["n_lenses_scored"] + real["n_lenses_without_cutout"] == 6
    n_random = real["targets"]["random"]["n"]  # parent galaxies outside the dataset: fewer than asked here
    assert 0 < n_random <= 40 and real["n_random_scored"] + real["n_random_without_cutout"] == n_random
    assert real["n_lenses_scored"] >= 4 and real["n_random_scored"] > 10
    assert [r["key"] for r in real["recall"]] == ["tpr@fpr1e-4", "tpr@fpr0.001", "tpr@fpr0.01"]
    assert all(r["recall_bootstrap_ci95"][0] <= r["recall"] <= r["recall_bootstrap_ci95"][1] for r in real["recall"])
    assert set(real["by_grading"]) == {"confident", "probable"}
    assert (res / "real_lenses/gen3/gallery.png").stat().st_size > 5_000
    assert not list(tmp_path.rglob("*-image-*.fits*")) and not (res / "mock_sky").exists()  # no coadds here
    stamps = sorted((res / "datasets/v5_unpaired/stamps").glob("part-*.parquet"))
    cands = res / "candidates/stamps/part-1-of-1.parquet"
    for path in stamps + [cands]:
        assert pq.read_table(path, columns=["cutout_resampled"])["cutout_resampled"].to_pylist() == \
            [True] * pq.read_metadata(path).num_rows
    rep = json.loads((res / "candidates/stamps/part-1-of-1.report.json").read_text())
    summ = json.loads((res / "candidates/summary.json").read_text())
    assert rep["cutouts_resampled"] and summ["n_parent"] == rep["n_written"] > 50
    n = len(FakeViewer.requests)
    assert n >= rep["n_written"] and list((res / "cutout_cache").rglob("*.fits"))
    (res / "candidates/summary.json").unlink()
    cands.unlink()
    (res / "real_lenses/gen3/stamps/part-1-of-1.parquet").unlink()
    snakemake(*args, cwd=tmp_path)  # cutouts again: all from the cache
    assert len(FakeViewer.requests) == n
    # politeness cannot change a stamp, so changing it reruns nothing (issue 28)
    polite = yaml.safe_load(svc.read_text())
    polite["sky"]["cutouts"].update(min_interval_s=1.0, max_retries=2, timeout_s=30.0, max_concurrent=1,
                                    cache_dir=str(tmp_path / "other_cache"), max_failure_fraction=0.2)
    svc.write_text(yaml.safe_dump(polite))
    assert planned_jobs(snakemake("-n", *args[2:], cwd=tmp_path)) == {}
    polite["sky"]["cutouts"]["layer"] = "ls-dr9"  # other pixels: everything cut from the service reruns
    svc.write_text(yaml.safe_dump(polite))
    assert planned_jobs(snakemake("-n", *args[2:], cwd=tmp_path)).get("inject", 0) >= 2


def test_a_past_false_positive_list_is_a_declared_input_of_the_manifest(tmp_path):
    """The user's list reaches phase 4a as a rule input: missing, the dry run names it;
    present, the manifest job is planned with it."""
    cfg = {"datasets": {"v5_unpaired": {"control": "matched_after_injection", "split": "sky",
                                        "past_false_positives": "my_false_positives.csv"}}}
    (tmp_path / "fp.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--configfile", DEMO, str(tmp_path / "fp.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "my_false_positives.csv" in proc.stdout + proc.stderr
    (tmp_path / "my_false_positives.csv").write_text("ra,dec\n150.1,2.0\n")
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(tmp_path / "fp.yaml"), cwd=tmp_path))
    assert jobs["manifest"] == 2 and jobs["match_controls"] == 1
