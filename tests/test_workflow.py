"""The Snakemake workflow itself: lint, dry run of the default DAG, and a tiny real run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.workflow

# A --configfile is the whole configuration; the tests stack theirs on the demo's.
DEMO = str(REPO / "config/config.yaml")


def snakemake(*args, cwd=REPO, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(cwd), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


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
    assert jobs["manifest"] == jobs["stamps_report"] == jobs["gallery"] == n_datasets
    assert jobs["inject"] == n_datasets * cfg["inject"]["shards"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    config = REPO / "tests/data/config_tiny.yaml"
    snakemake("--cores", "2", "--configfile", DEMO, str(config), cwd=work)
    return work, config


def test_tiny_run_produces_sky_parent_sample_and_stamps(tiny_run):
    work, _ = tiny_run
    for ds in ("v4_paired", "v5_unpaired"):
        d = work / "results/datasets" / ds
        audit = json.loads((d / "manifest_audit.json").read_text())
        report = json.loads((d / "stamps_report.json").read_text())
        assert report["n_written"] > 0 and report["n_written"] + report["n_skipped"] == audit["n_rows"]
        assert len(list((d / "stamps").glob("part-*-of-2.parquet"))) == 2
        assert (d / "gallery.png").stat().st_size > 10_000
    assert json.loads((work / "results/datasets/v4_paired/manifest_audit.json").read_text())["leaky"]
    hist = json.loads((work / "results/runs/gen3/history.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["epochs"][0]["duplication_factor"] == 1.0
    metrics = json.loads((work / "results/runs/gen3/metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["metrics"]["score_dtype"] == "logit_float32"
    assert (work / "results/runs/gen3/roc.png").exists() and not (work / "results/runs/gen2").exists()
    assert not json.loads((work / "results/datasets/v5_unpaired/manifest_audit.json").read_text())["leaky"]
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
    # (gen3 trains on v5_unpaired, so it retrains and re-evaluates; gen2 is untouched)
    assert jobs == {"manifest": 1, "inject": 2, "stamps_report": 1, "gallery": 1, "train": 1, "evaluate": 1, "all": 1}
    changed["datasets"]["v5_unpaired"].pop("priors")
    changed["sky"]["mock"]["n_blue"] = 41
    cfg2.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(cfg2), cwd=work))
    assert jobs["mock_brick"] == 2 and jobs["select_lrg"] == 2


def test_real_dr10_source_reads_the_same_files(tiny_run, tmp_path):
    """Point source: dr10 at the mock sky's files: the real-data path gives the same sample."""
    work, _ = tiny_run
    sky = work / "results/mock_sky"
    cfg = {
        "results_dir": "out",
        "sky": {"source": "dr10", "dr10": {"sweep_dir": str(sky / "sweep"), "coadd_dir": str(sky / "coadd")}},
        "select": {"chunk_rows": 50},
    }
    (tmp_path / "dr10.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake("-n", "--configfile", DEMO, str(tmp_path / "dr10.yaml"), cwd=tmp_path))
    assert "mock_brick" not in jobs and jobs["select_lrg"] == 2
    snakemake("parent_lrg", "--cores", "2", "--configfile", DEMO, str(tmp_path / "dr10.yaml"), cwd=tmp_path)
    ours = pq.read_table(tmp_path / "out/phase3/parent_lrg.parquet")
    assert ours.equals(pq.read_table(work / "results/phase3/parent_lrg.parquet"))


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
    cfg = {"results_dir": "out", "sky": {"source": "dr10", "dr10": {"sweep_dir": str(sweeps), "coadd_dir": "x"}}}
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
    work, config = tiny_run
    snakemake("--cores", "2", "compare", "report", "--configfile", DEMO, str(config), cwd=work)
    res = work / "results"
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())["compare"]
    c = json.loads((res / "compare/comparison.json").read_text())
    assert set(c["runs"]) == {"gen3", "gen2", *(f"gen3_with_{f}" for f in cfg["ablations"])}
    roles = [s["role"] for s in c["summary"]]
    assert roles[0] == "baseline" and "reference_float32" in roles  # gen2 ranked without its bf16 cast
    for s in c["summary"][1:]:
        lo, hi = s["delta_tpr@fpr0.001_ci95"]
        assert lo <= s["delta_tpr@fpr0.001"] <= hi
    answers = json.loads((res / "report/answers.json").read_text())
    assert len(answers) == 6 and all("results/" in " ".join(a["evidence"]) for a in answers)
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
    assert (res / "candidates/candidates.csv").read_text().startswith("rank,galaxy_id,ra,dec,logit,brickname")
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
