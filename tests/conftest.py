"""Shared test helpers: run the CLI in-process or as a subprocess; small architectures."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"

torch.set_num_threads(1)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m budgetnas ARGS` in a subprocess (exit codes and stderr as a user sees them)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "budgetnas", *map(str, args)], cwd=cwd or ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def run_cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """`budgetnas ARGS` through `cli.main` in this process: the exit code, stdout and stderr a user
    would see, without a new interpreter importing torch again (about 3 s a call). Meant for bad
    input and other short paths; an uncaught exception propagates (where a subprocess would print a
    traceback). The torch thread count and random state are restored afterwards."""
    from budgetnas.cli import main

    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
        torch.random.set_rng_state(rng)
    return subprocess.CompletedProcess(["budgetnas", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli_in_process():
    return run_cli_in_process


@pytest.fixture
def small_arch_path() -> Path:
    return EXAMPLES / "small_digits.json"
