"""benchmarks/gpu_suite.py (issue 30) in its CPU smoke mode: every part of the device
suite runs end to end and writes its JSON, so no device time is spent on a broken script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_smoke_runs_every_part(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert report["smoke"] and report["torch"]
    assert [r["images_per_s"] > 0 for r in report["train_step"]] == [True]
    loaders = {r["workers"]: r for r in report["loader"]}
    assert set(loaders) == {0, 1}
    # every training row is streamed once per pass, whatever the worker count
    assert loaders[0]["host"]["samples"] == loaders[1]["host"]["samples"] > 0
    assert report["profile"]["top_ops"] and (tmp_path / report["profile"]["table"]).read_text().strip()
    gen3 = report["gen3"]
    assert gen3["status"] == "finished" and [e["epoch"] for e in gen3["history"]] == [0, 1]
    assert gen3["test"]["n_pos"] > 0 and gen3["test"]["n_neg"] > 0


def test_gpu_suite_refuses_to_run_full_plan_without_a_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "gpu_suite.json").exists()
