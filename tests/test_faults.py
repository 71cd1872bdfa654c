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
