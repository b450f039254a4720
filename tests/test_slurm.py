"""The SLURM profile on a real (one-node) SLURM cluster: Debian's slurmctld/slurmd and
munge, started by tools/slurm_one_node.sh. As root with the packages installed (.ci/run
does both) the tests run; otherwise they skip and say why -- unless
LENSFINDER_REQUIRE_SLURM=1 (set by .ci/run), when a cluster that cannot start fails them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import DEMO, REPO, TINY, snakemake

pytestmark = pytest.mark.workflow

PROFILE = REPO / "workflow/profiles/slurm-gh200"
# The GH200 profile's account, partition, GPUs and memory, overridden for a 2-core CPU
# node; squeue for job status (no accounting database, so no sacct), polled every 2 s
# rather than the production 10 s after 40 s (jobs here take seconds).
CPU_NODE = ["--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-keep-successful-logs", "--jobs", "4",
            "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
            "--default-resources", "slurm_partition=debug", "runtime=30", "mem_mb=1500", "cpus_per_task=1",
            "--set-threads", "train=2", "evaluate=2", "bench_score=2"]
CPU_RESOURCES = ["train:gpu=0", "evaluate:gpu=0", "bench_score:gpu=0", "train:mem_mb=3000", "evaluate:mem_mb=3000",
                 "bench_score:mem_mb=3000", "manifest:mem_mb=2000"]


@pytest.fixture(scope="module")
def cluster():
    reason = None
    if os.geteuid() != 0:
        reason = "starting a SLURM cluster needs root"
    elif not all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        reason = "Debian's slurmctld, slurmd, slurm-client and munge are not installed (.ci/run installs them)"
    else:
        proc = subprocess.run([str(REPO / "tools/slurm_one_node.sh")], capture_output=True, text=True, timeout=180)
        if proc.returncode:
            reason = f"the one-node SLURM cluster did not start: {proc.stderr.strip()}"
    if reason:
        if os.environ.get("LENSFINDER_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def slurm_jobs(work, rule: str) -> int:
    """SLURM jobs Snakemake submitted for ``rule`` (one log per job)."""
    return len(list((work / ".snakemake/slurm_logs").glob(f"rule_{rule}/**/*.log")))


def history(work) -> list[dict]:
    return json.loads((work / "results/runs/gen3/history.json").read_text())["epochs"]


def assert_same_history(a, b):
    assert [e["epoch"] for e in a] == [e["epoch"] for e in b]
    for key in ("train_loss", "auc", "samples_seen", "lr"):
        np.testing.assert_allclose([e[key] for e in a], [e[key] for e in b], rtol=1e-5, err_msg=key)


def test_the_slurm_profile_runs_train_gen3_and_matches_a_local_run(cluster, tiny_run, tmp_path):
    local, _ = tiny_run
    snakemake("train_gen3", "--profile", str(PROFILE), *CPU_NODE, "--set-resources", *CPU_RESOURCES,
              "--configfile", DEMO, str(TINY), cwd=tmp_path)
    for rule in ("mock_brick", "select_lrg", "manifest", "train", "evaluate"):
        assert slurm_jobs(tmp_path, rule) >= 1, rule
    d = "results/datasets/v5_unpaired"
    for part in ("manifest.parquet", "stamps/part-1-of-2.parquet", "stamps/part-2-of-2.parquet"):
        # values equal, NaN (the controls' lens parameters) equal to NaN
        assert pq.read_table(tmp_path / d / part).to_pandas().equals(pq.read_table(local / d / part).to_pandas()), part
    assert_same_history(history(local), history(tmp_path))
    ours, theirs = (json.loads((w / "results/runs/gen3/metrics.json").read_text()) for w in (tmp_path, local))
    assert ours["fingerprint"] == theirs["fingerprint"]
    assert ours["metrics"]["auc"] == pytest.approx(theirs["metrics"]["auc"], rel=1e-5)


def test_slurm_time_limit_sigterm_checkpoints_and_the_retry_resumes(cluster, tiny_run, tmp_path):
    """The train job's first attempt gets a 1-minute SLURM time limit on a run that needs
    longer: SLURM itself sends SIGTERM, training checkpoints and exits, Snakemake's retry (the
    profile's retries; 30 minutes from the second attempt on, as one would ask a real cluster)
    resumes from ckpt/last.pt, and the history equals an uninterrupted run's."""
    local, _ = tiny_run
    long = yaml.safe_load(TINY.read_text())
    # ~3 min of training on 2 cores (SLURM checks limits every ~30 s: the SIGTERM comes 60-90 s
    # in), many steps per epoch (the tiny sky leaves ~30 training stamps, one batch of the
    # demo's 64; the demo's stamp_cnn ran 100 such epochs inside the minute and was never
    # stopped). Few, long epochs: each epoch's checkpoint and history cost ~0.15 s (900 epochs
    # of batch 8 took 5 min, 300 of batch 2 take 3; SLURM stopped the first attempt after
    # 130-160 of them)
    long["runs"]["gen3"]["train"] = {"epochs": 300, "early_stopping": {"enabled": False}}
    long["runs"]["gen3"]["model"] = {"name": "mobilenetv3_small_050"}
    long["runs"]["gen3"]["loader"] = {"batch_size": 2}
    cfg = tmp_path / "long.yaml"
    cfg.write_text(yaml.safe_dump(long))
    ref, run = tmp_path / "ref", tmp_path / "run"
    for work in (ref, run):
        shutil.copytree(local / "results", work / "results", ignore=shutil.ignore_patterns("runs", "logs"))
    # the uninterrupted reference first: beside the SLURM run, the two starve each other
    snakemake("train_gen3", "--cores", "2", "--configfile", DEMO, str(cfg), cwd=ref)
    snakemake("train_gen3", "--profile", str(PROFILE), *CPU_NODE, "--set-resources", *CPU_RESOURCES,
              # a 1-minute limit on every attempt made the outcome a race: the retry's
              # remaining ~60-90 s of training ended just at its own limit, was marked
              # TIMEOUT and run a third time (CI at 53be2d4)
              "train:runtime=max(1,30*(attempt-1))", "--configfile", DEMO, str(cfg), cwd=run)
    assert slurm_jobs(run, "train") == 2, "the time limit never interrupted training, or the retry did not finish"
    attempts = "".join(p.read_text() for p in (run / ".snakemake/slurm_logs").glob("rule_train/**/*.log"))
    assert "DUE TO TIME LIMIT" in attempts  # SLURM itself stopped it
    # said by the training process on the job's stderr (Snakemake's "exit status 75" line is
    # not reliably printed while its scheduler shuts down on the same SIGTERM)
    assert "interrupted, checkpoint written; exit 75" in attempts
    # Snakemake keeps the last attempt's log: it resumed mid-epoch (15 steps per epoch), from
    # the checkpoint the SIGTERM wrote, not from an epoch boundary
    starts = re.findall(r"training from epoch (\d+) step (\d+)", (run / "results/logs/train/gen3.log").read_text())
    assert starts and int(starts[0][0]) > 0 and int(starts[0][1]) > 0, starts
    assert_same_history(history(ref), history(run))


def test_multinode_recipe_trains_the_run_config_snakemake_wrote(cluster, tiny_run, tmp_path):
    """A non-default model and dataset: the sbatch recipe trains what the user's config
    files say (via run_config.json), under srun + torchrun c10d with 2 processes, and
    Snakemake then adopts the result."""
    import sys

    local, _ = tiny_run
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(yaml.safe_dump({"runs": {"gen3": {"dataset": "v4_paired", "nproc": 2,
                                                         "model": {"name": "convnext_femto"}}}}))
    shutil.copytree(local / "results", tmp_path / "results", ignore=shutil.ignore_patterns("runs", "logs"))
    configs = ["--configfile", DEMO, str(TINY), str(overlay)]
    snakemake("stamps", "results/runs/gen3/run_config.json", "--cores", "2", *configs, cwd=tmp_path)
    rc = json.loads((tmp_path / "results/runs/gen3/run_config.json").read_text())
    assert rc["run"]["model"]["name"] == "convnext_femto" and rc["dataset"] == "v4_paired"
    assert all("datasets/v4_paired/stamps/" in s for s in rc["stamps"])
    env = {**os.environ, "LENSFINDER_PYTHON": sys.executable, "LENSFINDER_NPROC_PER_NODE": "2"}
    proc = subprocess.run(["sbatch", "--wait", "--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2",
                           "--account=none", "--partition=debug", "--time=10", "--output=multinode.log",
                           str(PROFILE / "train_multinode.sbatch"), "gen3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stderr, (tmp_path / "multinode.log").read_text()[-3000:])
    h = json.loads((tmp_path / "results/runs/gen3/history.json").read_text())
    assert h["fingerprint"] == rc["fingerprint"]
    assert all(e["samples_seen_epoch"] == e["n_train"] for e in h["epochs"])  # 2 ranks, each sample once
    snakemake("train_gen3", "--cores", "2", *configs, cwd=tmp_path)
    # adopted: the train job found the finished state in ckpt/ and published it, no retraining
    assert "training from epoch" not in (tmp_path / "results/logs/train/gen3.log").read_text()
    assert json.loads((tmp_path / "results/runs/gen3/history.json").read_text()) == h
    m = json.loads((tmp_path / "results/runs/gen3/metrics.json").read_text())
    assert m["fingerprint"] == rc["fingerprint"]
