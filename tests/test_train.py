import json
import os

import numpy as np
import pytest
import torch

from lensfinder.training import loop
from lensfinder.training.config import TrainConfig
from lensfinder.training.objectives import loss_fn, make_scheduler

from stampdata import train_run, write_stamp_files

TINY = {"model": {"name": "convnext_atto", "drop_path_rate": 0.05}, "loader": {"batch_size": 16, "num_workers": 0},
        "train": {"epochs": 2, "lr": 2e-3, "early_stopping": {"patience": 5}}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_stamp_files(root, n_files=2, groups=3, rows=16)
    return root


def _history(out):
    return json.loads((out / "history.json").read_text())["epochs"]


def test_loss_is_float32_and_focal_alpha_weights_positives():
    logits = torch.tensor([2.0, -1.0, 0.5], dtype=torch.bfloat16)
    y = torch.tensor([1.0, 0.0, 1.0])
    assert loss_fn(logits, y, TrainConfig(loss="bce")).dtype == torch.float32
    pos = loss_fn(torch.tensor([0.0]), torch.tensor([1.0]), TrainConfig(loss="focal", focal_alpha=0.25))
    neg = loss_fn(torch.tensor([0.0]), torch.tensor([0.0]), TrainConfig(loss="focal", focal_alpha=0.25))
    assert pos == pytest.approx(neg / 3)  # alpha 0.25 down-weights positives 3:1


def test_schedules_per_step():
    p = torch.nn.Parameter(torch.zeros(1))
    lrs = {}
    for kind in ("cosine_steps", "gen2_epoch_tmax_per_step"):
        opt = torch.optim.AdamW([p], lr=1e-3)
        sched = make_scheduler(opt, TrainConfig(schedule=kind, epochs=4, warmup_frac=0.1, lr=1e-3), total_steps=100)
        lrs[kind] = []
        for _ in range(100):
            opt.step()
            sched.step()
            lrs[kind].append(sched.get_last_lr()[0])
    cos = np.array(lrs["cosine_steps"])
    assert (np.diff(cos[10:]) <= 1e-12).all() and cos[-1] == pytest.approx(1e-6, rel=1e-3)
    gen2 = np.array(lrs["gen2_epoch_tmax_per_step"])
    assert (np.diff(gen2) > 0).sum() > 10  # T_max in epochs stepped per step: the LR oscillates


def test_trains_writes_history_and_evaluation(dataset, tmp_path):
    assert train_run(TINY, "tiny", 1, dataset, tmp_path) == 0
    hist = _history(tmp_path)
    assert [h["epoch"] for h in hist] == [0, 1]
    for key in ("tpr@fpr1e-4", "tpr@fpr0.001", "fpr@tpr0.50", "fpr@tpr0.70", "fpr@tpr0.85", "train_loss", "auc",
                "pauc", "n_neg_tied_at_top", "score_dtype", "lr", "samples_seen"):
        assert key in hist[0], key
    assert hist[0]["duplication_factor"] == 1.0 and hist[1]["samples_seen"] == 2 * hist[0]["n_train"]
    assert (tmp_path / "best.pt").exists() and (tmp_path / "ckpt/val_scores/epoch_001.parquet").exists()
    from lensfinder.evaluate import evaluate_run
    m = evaluate_run(tmp_path / "run_config.json", tmp_path / "best.pt", sorted(dataset.glob("stamps/*.parquet")),
                     tmp_path)
    assert m["fingerprint"] == _fingerprint(tmp_path) and m["checkpoint_epoch"] == hist[-1]["best_epoch"]
    assert m["metrics"]["n_pos"] + m["metrics"]["n_neg"] > 0
    assert (tmp_path / "roc.png").stat().st_size > 5000


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_resume_after_kill_gives_the_same_history(dataset, tmp_path):
    ref = tmp_path / "ref"
    assert train_run(TINY, "tiny", 1, dataset, ref) == 0
    run = tmp_path / "run"
    killed = {**TINY, "train": {**TINY["train"], "stop_after_steps": 3}}
    assert train_run(killed, "tiny", 1, dataset, run) == 75  # interrupted mid-epoch 0
    assert (run / "ckpt/last.pt").exists() and not (run / "history.json").exists()
    assert train_run(killed, "tiny", 1, dataset, run) == 75  # killed again, in epoch 0 or 1
    assert train_run(TINY, "tiny", 1, dataset, run) == 0
    a, b = _history(ref), _history(run)
    for key in ("train_loss", "auc", "tpr@fpr0.001", "lr", "samples_seen", "max_logit_neg"):
        np.testing.assert_allclose([h[key] for h in a], [h[key] for h in b], rtol=1e-5, err_msg=key)


def _fingerprint(out):
    return json.loads((out / "run_config.json").read_text())["fingerprint"]


def test_changed_configuration_restarts_instead_of_resuming(dataset, tmp_path, capfd):
    killed = {**TINY, "train": {**TINY["train"], "stop_after_steps": 2}}
    assert train_run(killed, "tiny", 1, dataset, tmp_path) == 75
    other = {**TINY, "train": {**TINY["train"], "lr": 5e-4}}
    assert train_run(other, "tiny", 1, dataset, tmp_path) == 0
    assert "the run configuration changed" in capfd.readouterr().out
    assert (tmp_path / "ckpt.previous/last.pt").exists()  # the other configuration's state, kept aside
    h = json.loads((tmp_path / "history.json").read_text())
    assert h["fingerprint"] == _fingerprint(tmp_path) and [e["epoch"] for e in h["epochs"]] == [0, 1]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["fingerprint"] == _fingerprint(tmp_path)


def test_evaluation_refuses_a_checkpoint_of_another_configuration(dataset, tmp_path):
    from lensfinder.evaluate import StaleInput, evaluate_run
    assert train_run(TINY, "tiny", 1, dataset, tmp_path) == 0
    best = tmp_path / "best.pt"
    stamps = sorted(dataset.glob("stamps/*.parquet"))
    other = tmp_path / "other"
    other.mkdir()
    from lensfinder.tables import write_json
    from lensfinder.training.config import RunConfig, run_config_record
    changed = RunConfig.from_dict("tiny", 1, {**TINY, "train": {**TINY["train"], "lr": 5e-4}})
    write_json(run_config_record(changed, "synthetic", 1, stamps), other / "run_config.json")
    with pytest.raises(StaleInput, match="trained with configuration .* retrain the run"):
        evaluate_run(other / "run_config.json", best, stamps, other)
    with pytest.raises(StaleInput, match="other stamp files"):
        evaluate_run(tmp_path / "run_config.json", best, stamps[:1], other)


def test_changed_stamps_restart_training_instead_of_resuming(tmp_path):
    data = tmp_path / "data"
    write_stamp_files(data, n_files=1, groups=2, rows=16, seed=5)
    out = tmp_path / "run"
    assert train_run(TINY, "tiny", 1, data, out) == 0
    first = _history(out)
    assert train_run(TINY, "tiny", 1, data, out) == 0  # same stamps: the finished run is reused
    assert not (out / "ckpt.previous").exists()
    write_stamp_files(data, n_files=1, groups=2, rows=16, seed=6)  # phase 4c rewrote the stamps
    assert train_run(TINY, "tiny", 1, data, out) == 0
    assert (out / "ckpt.previous/last.pt").exists()  # the stale state is kept aside, not resumed
    second = _history(out)
    assert [h["epoch"] for h in second] == [0, 1] and second[0]["train_loss"] != first[0]["train_loss"]
    import pyarrow.parquet as pq
    assert pq.read_table(out / "val_scores.parquet").column_names == ["epoch", "sample_id", "label", "logit"]


def test_early_stopping_keeps_the_best_epoch(dataset, tmp_path, monkeypatch):
    scripted = iter([0.2, 0.6, 0.4, 0.3, 0.5, 0.9])
    real = loop.evaluate_scores

    def fake(labels, scores, dtype="logit_float32"):
        m = real(labels, scores, dtype)
        m["tpr@fpr0.001"] = next(scripted)
        return m

    monkeypatch.setattr(loop, "evaluate_scores", fake)
    run = {**TINY, "train": {**TINY["train"], "epochs": 6, "early_stopping": {"patience": 2}}}
    assert train_run(run, "tiny", 1, dataset, tmp_path) == 0
    h = json.loads((tmp_path / "history.json").read_text())
    assert [e["epoch"] for e in h["epochs"]] == [0, 1, 2, 3]  # stopped 2 epochs after the best
    assert h["best_epoch"] == 1 and h["stopped_early"]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 1


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_two_process_torchrun_gloo_with_uneven_shards(tmp_path):
    """5 row groups over 2 ranks: uneven batches. Padding steps keep the ranks in lockstep
    (no hang), every sample is seen once, validation is gathered exactly, and a run
    interrupted mid-epoch and resumed under DDP matches the uninterrupted one."""
    import pyarrow.parquet as pq
    data = tmp_path / "ds"
    write_stamp_files(data, n_files=1, groups=5, rows=20, seed=4)
    run = {**TINY, "train": {**TINY["train"], "epochs": 2}}
    ref = tmp_path / "ref"
    assert train_run(run, "ddp", 1, data, ref, nproc=2) == 0
    h = _history(ref)
    assert all(e["samples_seen_epoch"] == e["n_train"] and e["duplication_factor"] == 1.0 for e in h)
    val = pq.read_table(ref / "ckpt/val_scores/epoch_000.parquet")
    truth = pq.read_table(sorted(data.glob("stamps/*.parquet")), columns=["sample_id", "split"]).to_pandas()
    assert sorted(val["sample_id"].to_pylist()) == sorted(truth.loc[truth.split == "val", "sample_id"])
    interrupted = tmp_path / "int"
    killed = {**run, "train": {**run["train"], "stop_after_steps": 3}}
    assert train_run(killed, "ddp", 1, data, interrupted, nproc=2) == 75
    assert train_run(run, "ddp", 1, data, interrupted, nproc=2) == 0
    for key in ("train_loss", "auc", "samples_seen"):
        np.testing.assert_allclose([e[key] for e in h], [e[key] for e in _history(interrupted)], rtol=1e-5, err_msg=key)


@pytest.mark.slow  # >= 5 s on 2 cores: left out of `make check`
def test_gen2_configuration_reproduces_its_mechanisms(dataset, tmp_path):
    """Every gen2 switch on at once: the loader duplicates each sample num_workers times,
    scores are ranked as bf16 probabilities (with the float32-logit view alongside), no
    early stopping (all epochs run; the last weights are kept)."""
    gen2 = {"model": {"name": "convnext_atto"}, "loader": {"batch_size": 16, "num_workers": 2, "legacy_sharding": True},
            "train": {"epochs": 3, "lr": 2e-3, "schedule": "gen2_epoch_tmax_per_step", "loss": "focal",
                      "focal_alpha": 0.25, "eval_score_dtype": "prob_bfloat16", "grad_clip": 0.0,
                      "early_stopping": {"enabled": False}}}
    assert train_run(gen2, "gen2", 1, dataset, tmp_path) == 0
    h = json.loads((tmp_path / "history.json").read_text())
    assert len(h["epochs"]) == 3 and not h["stopped_early"]
    assert all(e["duplication_factor"] == 2.0 for e in h["epochs"])
    assert all(e["score_dtype"] == "prob_bfloat16" and "logit_float32" in e for e in h["epochs"])
    # the published model is the last epoch, and the history names the same one
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 2 == h["best_epoch"]
    assert [e["best_epoch"] for e in h["epochs"]] == [0, 1, 2]


@pytest.mark.parametrize("name", ["stamp_cnn", "mobilenetv3_small_050", "resnet10t"])
def test_a_small_cpu_model_trains_end_to_end(dataset, tmp_path, name):
    """The science configuration's CPU models go through the same training as ConvNeXt."""
    run = {**TINY, "model": {"name": name}, "train": {**TINY["train"], "epochs": 1}}
    assert train_run(run, "small", 3, dataset, tmp_path) == 0
    assert len(_history(tmp_path)) == 1 and (tmp_path / "best.pt").exists()


def test_a_model_that_is_neither_convnext_nor_a_listed_small_one_is_refused():
    from lensfinder.training.config import ConfigError, ModelConfig
    with pytest.raises(ConfigError, match=r"model.name: 'resnet50' is not a known model.*mobilenetv3_small_050.*stamp_cnn"):
        ModelConfig.from_dict({"name": "resnet50"})


def test_stamp_cnn_keeps_full_resolution_in_its_first_stage_and_pools_to_its_last_width():
    from lensfinder.training.config import ConfigError, ModelConfig
    from lensfinder.training.model import StampCNN, build_model
    net = StampCNN((4, 8, 16))
    x = torch.zeros(2, 3, 64, 64)
    assert net.features[:6](x).shape == (2, 4, 64, 64)  # two conv-BN-ReLU before the first pool
    assert net(x).shape == (2, 16) and net.num_features == 16
    model = build_model(ModelConfig.from_dict({"name": "stamp_cnn", "widths": [4, 8]}))
    assert model(torch.zeros(3, 3, 64, 64)).shape == (3,)
    with pytest.raises(ConfigError, match="widths"):
        ModelConfig.from_dict({"name": "stamp_cnn", "widths": [4, 0]})


@pytest.mark.slow  # three short trainings
def test_a_resume_with_another_thread_count_pins_the_checkpoints_and_matches(dataset, tmp_path, capfd):
    """Issue 32 item 5: the thread count is in the checkpoint; a resume under another count
    runs with the saved one, so the history equals the uninterrupted run's exactly."""
    threads = torch.get_num_threads()
    if threads < 2:
        pytest.skip("needs 2 threads to change the count")
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert train_run(TINY, "tiny", 1, dataset, ref) == 0
    killed = {**TINY, "train": {**TINY["train"], "stop_after_steps": 4}}
    assert train_run(killed, "tiny", 1, dataset, run) == 75
    assert torch.load(run / "ckpt/last.pt", weights_only=True)["torch_threads"] == threads
    torch.set_num_threads(1)
    try:
        assert train_run(TINY, "tiny", 1, dataset, run) == 0
        assert torch.get_num_threads() == threads  # pinned to the checkpoint's
    finally:
        torch.set_num_threads(threads)
    assert f"written with {threads} torch threads, this process has 1" in capfd.readouterr().out
    assert [h["train_loss"] for h in _history(ref)] == [h["train_loss"] for h in _history(run)]


def test_a_second_trainer_of_a_run_fails_at_once_naming_the_holder(dataset, tmp_path):
    """Issue 32 item 1: while one process trains a run (holds runs/<run>/train.lock), another
    trainer of it fails before touching the checkpoint or the published files."""
    import fcntl
    import socket

    from lensfinder.training.run_lock import RunLock, RunLocked

    run = tmp_path / "run"
    with RunLock(run, "tiny"):  # this process plays the first trainer
        (run / "history.json").write_text("published by the first trainer")
        with pytest.raises(RunLocked, match=rf"already being trained by pid {os.getpid()} on {socket.gethostname()}"):
            train_run(TINY, "tiny", 1, dataset, run)
        assert (run / "history.json").read_text() == "published by the first trainer"
        assert not (run / "ckpt").exists()
    # released (as the kernel does when a holder dies): the next trainer runs
    assert train_run(TINY, "tiny", 1, dataset, run) == 0
    with open(run / "train.lock") as f:  # and let go of it when done
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_evaluation_reads_the_checkpoint_under_the_run_lock(dataset, tmp_path):
    """Issue 32 item 1: scoring reads best.pt under a shared lock on the run -- it fails at
    once while the run is being trained, and a trainer fails at once while it reads; readers
    do not block each other; the SHA-256 recorded is that of the bytes it scored."""
    import hashlib
    import socket

    from lensfinder.training.inference import SelectedModel
    from lensfinder.training.run_lock import RunLock, RunLocked

    run = tmp_path / "run"
    assert train_run(TINY, "tiny", 1, dataset, run) == 0
    cfg, best = run / "run_config.json", run / "best.pt"
    with RunLock(run, "tiny"):
        with pytest.raises(RunLocked, match=rf"being trained by pid {os.getpid()} on {socket.gethostname()}.*"
                                            "Evaluate it after"):
            SelectedModel(cfg, best)
    with RunLock(run, "tiny", shared=True):  # an evaluation is reading
        sel = SelectedModel(cfg, best)  # a second reader is welcome
        with pytest.raises(RunLocked, match="is being evaluated"):
            train_run(TINY, "tiny", 1, dataset, run)
    assert sel.provenance()["checkpoint_sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert (run / "train.lock").read_text() == ""  # a finished trainer is named by no later refusal
