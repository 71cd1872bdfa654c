"""Kill-anywhere harness: run a command, SIGKILL it at chosen points, resume until it finishes,
and compare its outputs with an uninterrupted run. Used by the tests and benchmarks/faults.py.

Kill points:
- "write:N": inside the N-th atomic file write, after the temporary file is written and synced and
  before it is renamed (the worst moment for a checkpoint);
- "at:NAME:N": the N-th time the process passes the named point NAME (`budgetnas.io.fault_point`:
  "train-step" for each training step of `train` and of DNA teachers, "block-step" for each DNA
  block-training step, "rate" after each DNA candidate is rated, "search-step" after each MGAS
  search step, "generator-step" after each NAG generator iteration);
- "time:S": after S seconds.
After every kill the harness checks that each file in the run directory is complete (JSON parses,
safetensors and checkpoints load); after the last run it checks no temporary file is left.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    kill_point: str
    killed: bool
    resumes: int
    equal: bool
    differences: list[str] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)  # per restart: "resume" or "fresh" (no checkpoint yet)


def _run(args: list[str], out: Path, *, resume: bool, kill_point: str | None,
         cwd: Path, timeout: float, trace: Path | None = None) -> bool:
    """Run once; returns True when the process was killed by the injected fault."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BUDGETNAS_TRACE", None)
    if trace is not None:
        env["BUDGETNAS_TRACE"] = str(trace)
    env.pop("BUDGETNAS_KILL_AT_WRITE", None)
    env.pop("BUDGETNAS_KILL_AT", None)
    if kill_point and kill_point.startswith("write:"):
        env["BUDGETNAS_KILL_AT_WRITE"] = kill_point.split(":", 1)[1]
    elif kill_point and kill_point.startswith("at:"):
        env["BUDGETNAS_KILL_AT"] = kill_point.split(":", 1)[1]
    cmd = [sys.executable, "-m", "budgetnas", *args, "--out", str(out)] + (["--resume"] if resume else [])
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    if kill_point and kill_point.startswith("time:"):
        try:
            proc.wait(timeout=float(kill_point.split(":", 1)[1]))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if proc.returncode == -signal.SIGKILL:
        return True
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return False


def _without(obj, ignore: set[str]):
    if isinstance(obj, dict):
        return {k: _without(v, ignore) for k, v in obj.items() if k not in ignore}
    if isinstance(obj, list):
        return [_without(v, ignore) for v in obj]
    return obj


def compare_json(reference: Path, candidate: Path, files: list[str], ignore: set[str]) -> list[str]:
    """Names of the (file, top-level key) pairs that differ; `ignore` lists keys that legitimately
    differ (wall-clock times, memory), removed at any depth, as is the creation time `created`."""
    ignore = set(ignore) | {"created"}
    differences = []
    for name in files:
        a, b = reference / name, candidate / name
        if not a.exists():
            differences += [f"{name}: written by the interrupted run only"] if b.exists() else []
            continue
        if not b.exists():
            differences.append(f"{name}: missing")
            continue
        if name.endswith(".json"):
            ja = _without(json.loads(a.read_text()), ignore)
            jb = _without(json.loads(b.read_text()), ignore)
            differences += [f"{name}:{k}" for k in sorted(set(ja) | set(jb))
                            if ja.get(k) != jb.get(k)]
        elif a.read_bytes() != b.read_bytes():
            differences.append(name)
    return differences


def incomplete_files(directory: Path) -> list[str]:
    """Files in `directory` that a reader could not load (a torn write); temporary files and the
    lock are skipped (they are never read)."""
    from .io import load_checkpoint, load_safetensors

    bad = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".jsonl":
                for line in path.read_text().splitlines():
                    json.loads(line)
            elif path.suffix == ".safetensors":
                load_safetensors(path)
            elif path.suffix == ".pt":
                load_checkpoint(path)
        except Exception:  # noqa: BLE001 - any failure to read is a partial file
            bad.append(str(path.relative_to(directory)))
    return bad


def kill_and_resume(args: list[str], workdir: Path, kill_point: str, *, files: list[str],
                    ignore: set[str], reference: Path, cwd: Path, timeout: float = 600,
                    max_resumes: int = 5) -> Outcome:
    out = workdir / kill_point.replace(":", "_")
    killed = _run(args, out, resume=False, kill_point=kill_point, cwd=cwd, timeout=timeout)
    partial = [f"partial file after the kill: {n}" for n in incomplete_files(out)] if killed else []
    resumes, restarts = 0, []
    while killed and resumes < max_resumes:
        resumes += 1
        can_resume = (out / "checkpoint.pt").exists()
        restarts.append("resume" if can_resume else "fresh")
        killed = _run(args, out, resume=can_resume, kill_point=None, cwd=cwd, timeout=timeout) \
            if can_resume else _run(args, out, resume=False, kill_point=None, cwd=cwd, timeout=timeout)
    leftovers = [p.name for p in out.rglob(".*.tmp")]
    differences = partial + compare_json(reference, out, files, ignore) + \
        [f"temp file left: {n}" for n in leftovers]
    return Outcome(kill_point, resumes > 0, resumes, not differences, differences, restarts)


def reference_run(args: list[str], workdir: Path, *, cwd: Path, timeout: float = 600,
                  trace: Path | None = None) -> Path:
    """The uninterrupted run; with `trace`, the file lists its writes and named points in order
    (to choose kill points from)."""
    out = workdir / "reference"
    _run(args, out, resume=False, kill_point=None, cwd=cwd, timeout=timeout, trace=trace)
    return out


def read_trace(trace: Path, root: Path | None = None) -> tuple[list[str], dict[str, int]]:
    """(paths of the atomic writes in order, relative to `root`; count of each named point)."""
    writes, points = [], {}
    for line in Path(trace).read_text().splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "write":
            path = rest.split(" ", 1)[1]
            writes.append(os.path.relpath(path, root) if root else path)
        else:
            name, count = rest.rsplit(" ", 1)
            points[name] = max(points.get(name, 0), int(count))
    return writes, points




PROGRESS_LINE = re.compile(r"^\[[\w-]+\] ")  # what runs/progress.py prints per step off a terminal


def error_text(stderr: str) -> str:
    """stderr without the per-step progress lines: what a failed command said about the failure
    (tests check that this is one line)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not PROGRESS_LINE.match(line))
