"""Retraining: accuracy on digits, exact resume after SIGKILL, cross-dataset transfer, DDP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from budgetnas import build_model, load_arch
from budgetnas.data import load_dataset
from budgetnas.train.recipes import RECIPES
from budgetnas.train.trainer import train_model

from conftest import EXAMPLES, ROOT


def test_small_example_reaches_90_percent_on_digits(tmp_path, cli_in_process, small_arch_path):
    result = cli_in_process("train", small_arch_path, "--dataset", "digits", "--epochs", "5", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_acc"] >= 0.90 and metrics["epochs"] == 5
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 5
    assert metrics["params_nonzero"] == sum(p.numel() for p in build_model(load_arch(small_arch_path)).parameters())


def test_sigkill_then_resume_gives_identical_metrics(tmp_path, cli_in_process, small_arch_path):
    args = ["train", small_arch_path, "--epochs", "4", "--batch-size", "128", "--seed", "3", "--threads", "1"]
    reference = cli_in_process(*args, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "budgetnas", *map(str, args), "--out", str(out)],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "log.jsonl").exists() and time.time() < deadline:  # kill after epoch 1
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    resumed = cli_in_process(*args, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    got = json.loads((out / "metrics.json").read_text())
    for key in ("test_acc", "final_train_loss", "rank_checksums", "params_nonzero"):
        assert got[key] == ref[key], key


def test_reusing_a_run_directory_is_refused(tmp_path, cli_in_process, small_arch_path):
    assert cli_in_process("train", small_arch_path, "--epochs", "1", "--out", tmp_path).returncode == 0
    again = cli_in_process("train", small_arch_path, "--epochs", "1", "--out", tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_transfer_to_another_dataset(tmp_path):
    # Searched on digits (1 channel, 10 classes, 8 px) -> retrained on synthetic (3 ch, 4 classes).
    arch = load_arch(EXAMPLES / "small_digits.json")
    recipe = RECIPES["quick"].model_copy(update={"epochs": 1, "batch_size": 64})
    metrics = train_model(arch, load_dataset("synthetic"), tmp_path, recipe, progress=False)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["epochs"] == 1


def test_config_file_and_flag_precedence(tmp_path, cli_in_process, small_arch_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1\nbatch_size: 200\nlr: 0.01\n")
    result = cli_in_process("train", small_arch_path, "--config", config, "--lr", "0.02", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    recipe = json.loads((tmp_path / "r" / "metrics.json").read_text())["recipe"]
    assert recipe["epochs"] == 1 and recipe["batch_size"] == 200 and recipe["lr"] == 0.02


@pytest.mark.parametrize("content, needle", [
    ("epochs: -3\n", "epochs"),
    ("colour: red\n", "unknown option 'colour'"),
    ("epochs: [1\n", "not valid YAML"),
    ("- 1\n- 2\n", "mapping"),
])
def test_bad_config_exit_2(tmp_path, cli_in_process, small_arch_path, content, needle):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    result = cli_in_process("train", small_arch_path, "--config", config, "--out", tmp_path / "r")
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr


def test_bad_flag_values_exit_2(tmp_path, cli_in_process, small_arch_path):
    for args in (["--epochs", "0"], ["--dataset", "mnist"], ["--lr", "abc"]):
        result = cli_in_process("train", small_arch_path, *args, "--out", tmp_path / "r")
        assert result.returncode == 2 and "Traceback" not in result.stderr, args


def test_torchrun_two_processes_end_identical(tmp_path, small_arch_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "budgetnas", "train", str(small_arch_path), "--epochs", "2", "--batch-size", "64",
           "--out", str(tmp_path), "--device", "cpu"]
    result = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-8000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert len(set(metrics["rank_checksums"])) == 1


def test_init_from_weights_with_zero_epochs_only_evaluates(tmp_path, cli_in_process, small_arch_path):
    assert cli_in_process("train", small_arch_path, "--epochs", "1", "--out", tmp_path / "first").returncode == 0
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    again = cli_in_process("train", small_arch_path, "--init-from", tmp_path / "first", "--epochs", "0", "--out", tmp_path / "zero")
    assert again.returncode == 0, again.stderr
    zero = json.loads((tmp_path / "zero" / "metrics.json").read_text())
    assert zero["test_acc"] == first["test_acc"] and zero["epochs"] == 0
    assert (tmp_path / "zero" / "model.safetensors").read_bytes() == (tmp_path / "first" / "model.safetensors").read_bytes()
    tuned = cli_in_process("train", small_arch_path, "--init-from", tmp_path / "first" / "model.safetensors", "--epochs", "1",
                "--out", tmp_path / "tuned")
    assert tuned.returncode == 0, tuned.stderr
    missing = cli_in_process("train", small_arch_path, "--init-from", tmp_path / "nowhere", "--epochs", "0", "--out", tmp_path / "x")
    assert missing.returncode == 2 and "--init-from" in missing.stderr and "Traceback" not in missing.stderr


def test_a_non_main_rank_writes_nothing_in_the_run_directory(tmp_path, monkeypatch, small_arch_path):
    """Rank 0 alone writes: another rank writing beside it raced its removal of stale temporary files."""
    from budgetnas.cli import main

    monkeypatch.setenv("RANK", "1")  # WORLD_SIZE unset: no process group, only the rank's role
    out = tmp_path / "run"
    out.mkdir()
    assert main(["train", str(small_arch_path), "--epochs", "1", "--out", str(out), "--threads", "1"]) == 0
    assert list(out.iterdir()) == []
