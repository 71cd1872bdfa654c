"""Faults and hostile input: full disk, NaN losses, busy run directories, malicious pickles,
and property-based malformed architecture files and configs."""
from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budgetnas import io as bio
from budgetnas.arch import validate_arch_dict
from budgetnas.config import resolve_options
from budgetnas.errors import UserError
from budgetnas.train.command import TrainOptions

from conftest import EXAMPLES


def test_full_disk_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    bio.write_json(target, {"v": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bio.os, "fsync", no_space)
    with pytest.raises(UserError, match="no space left"):
        bio.write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temp file left


def test_nan_loss_stops_with_exit_2(tmp_path, cli, small_arch_path):
    result = cli("train", small_arch_path, "--epochs", "2", "--lr", "1e6", "--grad-clip", "0",
                 "--out", tmp_path)
    assert result.returncode == 2
    assert "loss became nan" in result.stderr and "step" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_run_directory_is_refused(tmp_path, cli_in_process, small_arch_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(str(holder.pid))
        result = cli_in_process("train", small_arch_path, "--epochs", "1", "--out", tmp_path)
        assert result.returncode == 2 and f"pid {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    # A stale lock (dead process) is taken over.
    result = cli_in_process("train", small_arch_path, "--epochs", "1", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".lock").exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['BUDGETNAS_PWNED']}",))


def test_malicious_checkpoint_is_not_executed(tmp_path, cli, small_arch_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("BUDGETNAS_PWNED", str(marker))
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(pickle.dumps({"model": _Exploit()}))
    result = cli("train", small_arch_path, "--epochs", "1", "--out", run, "--resume",
                 env={"BUDGETNAS_PWNED": str(marker)})
    assert result.returncode == 2 and "cannot be loaded safely" in result.stderr
    assert not marker.exists()


_VALID = json.loads((EXAMPLES / "small_digits.json").read_text())
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = [p for p in _paths(_VALID) if p]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_ALL_PATHS), _json_values, st.booleans())
def test_any_corrupted_arch_gives_user_error_or_is_valid(path, value, delete):
    obj = json.loads(json.dumps(_VALID))
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    try:
        validate_arch_dict(obj, where="arch.json")
    except UserError as exc:
        assert str(exc).startswith("arch.json")
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(list(TrainOptions.model_fields) + ["bogus", "lr-min"]),
                       _json_values, max_size=4))
def test_any_yaml_config_gives_user_error_or_options(tmp_path_factory, values):
    import argparse

    import yaml

    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    try:
        resolve_options(TrainOptions, argparse.Namespace(config=str(path)))
    except UserError as exc:
        assert "\n" not in str(exc)


def test_out_paths_that_are_files_and_run_directories_as_arch(tmp_path, cli_in_process, small_arch_path):
    """--out naming an existing file: exit 2 on one line (train and search); export --out naming a
    directory writes DIR/model.onnx; a run directory stands for its arch.json; report refuses a
    directory that is not a run; a resume with another option names it."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for args in (["train", small_arch_path, "--epochs", "1"], ["search", "mgas", "--subset", "100"]):
        result = cli_in_process(*args, "--out", a_file)
        assert result.returncode == 2 and "is a file" in result.stderr and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    run = tmp_path / "run"
    assert cli_in_process("train", small_arch_path, "--epochs", "1", "--subset", "100", "--out", run).returncode == 0
    profiled = cli_in_process("profile", run, "--json")  # a run directory for ARCH
    assert profiled.returncode == 0 and json.loads(profiled.stdout)["params_nonzero"] == 33_398
    target = tmp_path / "exported"
    target.mkdir()
    exported = cli_in_process("export", run, "--weights", run, "--format", "torchscript", "--out", target)
    assert exported.returncode == 0, exported.stderr
    assert (target / "model.pt").is_file()
    resumed = cli_in_process("train", small_arch_path, "--epochs", "2", "--subset", "100", "--out", run, "--resume")
    assert resumed.returncode == 2 and "--epochs is 2 now but was 1" in resumed.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    report = cli_in_process("report", empty)
    assert report.returncode == 2 and "not a budgetnas run directory" in report.stderr
    assert not (empty / "report.html").exists()


def test_a_refused_target_leaves_no_run_directory(tmp_path, cli_in_process):
    for method in ("mgas", "darts", "random"):
        result = cli_in_process("search", method, "--subset", "100", "--target-params", "10", "--out", tmp_path / method)
        assert result.returncode == 2, result.stderr
        assert not (tmp_path / method).exists()
