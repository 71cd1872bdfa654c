"""Kill anywhere, resume exactly: SIGKILL inside checkpoint writes, then resume to the end."""
from __future__ import annotations

import pytest

from budgetnas.testing import kill_and_resume, reference_run

from conftest import EXAMPLES, ROOT

TRAIN = ["train", str(EXAMPLES / "small_digits.json"), "--epochs", "3", "--batch-size", "256",
         "--seed", "1"]
TRAIN_FILES = ["metrics.json", "model.safetensors", "arch.json"]
TIMING_KEYS = {"train_seconds", "peak_memory_mb"}


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory):
    return reference_run(TRAIN, tmp_path_factory.mktemp("faults"), cwd=ROOT)


@pytest.mark.parametrize("kill_point", ["write:1", "write:2", "write:5"])
def test_train_killed_during_a_write_resumes_identically(train_reference, tmp_path, kill_point):
    outcome = kill_and_resume(TRAIN, tmp_path, kill_point, files=TRAIN_FILES, ignore=TIMING_KEYS,
                              reference=train_reference, cwd=ROOT)
    assert outcome.killed, "the fault point was never reached"
    assert outcome.equal, outcome.differences


def test_full_disk_during_a_checkpoint_exits_2_and_keeps_the_previous_one(train_reference, tmp_path, cli):
    from budgetnas.io import load_checkpoint
    from budgetnas.testing import compare_json, error_text, incomplete_files

    out = tmp_path / "run"
    # Writes of `train`: run_info.json, arch.json, then per epoch checkpoint.pt and log.jsonl;
    # the 5th is the checkpoint of epoch 2.
    full = cli(*TRAIN, "--out", out, env={"BUDGETNAS_ENOSPC_AT_WRITE": "5"})
    assert full.returncode == 2, full.stderr
    error = error_text(full.stderr)  # the epochs before the failure printed their progress lines
    assert error.count("\n") == 1 and "no space left" in error and "checkpoint.pt" in error
    assert "Traceback" not in full.stderr
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 0  # epoch 1's checkpoint, intact
    assert incomplete_files(out) == [] and not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    resumed = cli(*TRAIN, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert compare_json(train_reference, out, TRAIN_FILES, TIMING_KEYS) == []


def test_full_disk_during_a_dna_block_checkpoint_exits_2(tmp_path, cli):
    from budgetnas.io import load_checkpoint

    out = tmp_path / "run"
    # run_info.json, the teacher's 6 files, then block 0's checkpoints (epoch 1 = write 8, 2 = write 9).
    result = cli("search", "dna", "--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "2",
                 "--depths", "1", "--ops", "e3k3", "--final-epochs", "0", "--target-params", "40000",
                 "--no-report", "--out", out, env={"BUDGETNAS_ENOSPC_AT_WRITE": "9"})
    assert result.returncode == 2 and "no space left" in result.stderr and "Traceback" not in result.stderr
    assert load_checkpoint(out / "round0" / "block0" / "checkpoint.pt")["epoch"] == 0
    assert not list(out.rglob(".*.tmp"))


def test_the_harness_detects_torn_files(tmp_path):
    from budgetnas import io as bio
    from budgetnas.testing import incomplete_files

    bio.write_json(tmp_path / "ok.json", {"a": 1})
    bio.save_checkpoint(tmp_path / "sub" / "checkpoint.pt", {"epoch": 1})
    (tmp_path / "torn.json").write_text('{"a": ')
    (tmp_path / "sub" / "torn.safetensors").write_bytes(b"\x08\x00\x00")
    (tmp_path / ".torn.json.tmp").write_text("{")  # temporary files are never read
    assert incomplete_files(tmp_path) == ["sub/torn.safetensors", "torn.json"]
