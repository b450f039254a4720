"""Cluster execution: the SLURM profile plans the DAG; SIGTERM preemption resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from lensfinder.training.objectives import scaled_lr
from lensfinder.training.config import TrainConfig

from conftest import REPO
from stampdata import train_run, write_stamp_files

RUN = {"model": {"name": "convnext_atto"}, "loader": {"batch_size": 8, "num_workers": 0},
       "train": {"epochs": 2, "lr": 2e-3}}


def test_slurm_profile_parses_and_plans_gpu_training(tmp_path):
    profile = REPO / "workflow/profiles/slurm-gh200/config.yaml"
    cfg = yaml.safe_load(profile.read_text())
    assert cfg["executor"] == "slurm" and cfg["retries"] >= 1
    assert cfg["set-resources"]["train"]["gpu"] >= 1 and cfg["set-resources"]["evaluate"]["gpu"] >= 1
    assert cfg["groups"]["inject"] in cfg["group-components"]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n",
                           "--profile", str(profile.parent), "train_gen3"], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    train_block = out[out.index("rule train:"):]
    assert "gpu=1" in train_block.split("\n\n")[0] and "slurm_partition=" in train_block.split("\n\n")[0]


def test_local_profile_parses():
    cfg = yaml.safe_load((REPO / "workflow/profiles/local/config.yaml").read_text())
    assert cfg["set-resources"]["train"]["gpu"] == 1


def test_lr_scaling_rule():
    assert scaled_lr(TrainConfig(lr=1e-3, lr_scaling="linear", lr_reference_batch=256), 1024) == pytest.approx(4e-3)
    assert scaled_lr(TrainConfig(lr=1e-3, lr_scaling="sqrt", lr_reference_batch=256), 1024) == pytest.approx(2e-3)
    assert scaled_lr(TrainConfig(lr=1e-3), 1024) == 1e-3


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_checkpoints_and_the_rerun_reproduces_the_uninterrupted_run(tmp_path, workers):
    """SIGTERM to the whole process group, DataLoader workers included, as SLURM sends it
    at a time limit: the workers ignore it, the main process checkpoints and exits 75."""
    data = tmp_path / "ds"
    write_stamp_files(data, n_files=2, groups=3, rows=16)
    run_cfg = {**RUN, "loader": {**RUN["loader"], "num_workers": workers}}
    ref = tmp_path / "ref"
    assert train_run(run_cfg, "pre", 1, data, ref) == 0
    run = tmp_path / "run"
    launch_cfg = write_run_config_like(run, data, run_cfg)
    proc = subprocess.Popen([sys.executable, "-m", "lensfinder.training.launch", "--run-config", str(launch_cfg),
                             "--out-dir", str(run)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()  # "[pre] training from epoch 0 ..."
    assert "training from epoch 0" in line
    time.sleep(1.0)  # the first batches are in flight: the workers exist
    os.killpg(proc.pid, signal.SIGTERM)  # handled at the next step
    assert proc.wait(timeout=120) == 75
    assert "interrupted at epoch" in proc.stdout.read()
    assert (run / "ckpt/last.pt").exists() and not (run / "best.pt").exists()
    assert train_run(run_cfg, "pre", 1, data, run) == 0  # the retry
    a = json.loads((ref / "history.json").read_text())["epochs"]
    b = json.loads((run / "history.json").read_text())["epochs"]
    for key in ("train_loss", "auc", "samples_seen", "lr"):
        np.testing.assert_allclose([h[key] for h in a], [h[key] for h in b], rtol=1e-5, err_msg=key)


SIGTERM_AS_WORKERS_START = """
import os, signal, sys
from torch.utils.data import IterableDataset
from lensfinder.training.data import ignore_sigterm
from lensfinder.training.data import {loader} as Loader
from lensfinder.training.preemption import SigtermFlag

class Numbers(IterableDataset):
    def __iter__(self):
        return iter(range(4))

def init(worker_id):  # the time limit strikes while this worker starts, before it ignores SIGTERM
    os.killpg(0, signal.SIGTERM)
    ignore_sigterm(worker_id)

with SigtermFlag() as flag:
    loader = Loader(Numbers(), batch_size=None, num_workers=2, worker_init_fn=init)
    out = [sorted(int(x) for x in loader) for epoch in range(3)]
print(flag.requested, out)
"""


@pytest.mark.parametrize("loader", ["SigtermSafeLoader", "DataLoader"])
def test_a_sigterm_while_the_workers_start_is_left_to_the_main_process(loader):
    """SLURM's SIGTERM reaching a DataLoader worker before its worker_init_fn ignores it
    killed the worker and crashed training instead of checkpointing (CI, 2026-12-02). With
    SigtermSafeLoader the workers start with it blocked: they live, every epoch is complete
    and the main process sees the signal. Plain DataLoader shows the race is real."""
    proc = subprocess.run([sys.executable, "-c", SIGTERM_AS_WORKERS_START.format(loader=loader)],
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    if loader == "DataLoader":
        assert proc.returncode != 0 and "killed by signal" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[0] == "True " + str([[0, 0, 1, 1, 2, 2, 3, 3]] * 3)


def write_run_config_like(out, data, run=RUN):
    from lensfinder.tables import write_json
    from lensfinder.training.config import RunConfig, run_config_record
    stamps = sorted(str(p) for p in data.glob("stamps/*.parquet"))
    path = out / "run_config.json"
    write_json(run_config_record(RunConfig.from_dict("pre", 1, run), "ds", 1, stamps), path)
    return path
