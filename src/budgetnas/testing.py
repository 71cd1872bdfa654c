"""Kill-anywhere harness: run a command, SIGKILL it at chosen points, resume until it finishes,
and compare its outputs with an uninterrupted run. Used by the tests and benchmarks/faults.py.

Kill points are either "write:N" (inside the N-th atomic file write, after the temporary file is
written and before it is renamed — the worst moment for a checkpoint) or "time:S" (after S seconds).
"""
from __future__ import annotations

import json
import os
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


def _run(args: list[str], out: Path, *, resume: bool, kill_point: str | None,
         cwd: Path, timeout: float) -> bool:
    """Run once; returns True when the process was killed by the injected fault."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BUDGETNAS_KILL_AT_WRITE", None)
    if kill_point and kill_point.startswith("write:"):
        env["BUDGETNAS_KILL_AT_WRITE"] = kill_point.split(":", 1)[1]
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


def compare_json(reference: Path, candidate: Path, files: list[str], ignore: set[str]) -> list[str]:
    """Names of the (file, key) pairs that differ; `ignore` lists keys that legitimately differ
    (wall-clock times, memory)."""
    differences = []
    for name in files:
        a, b = reference / name, candidate / name
        if not b.exists():
            differences.append(f"{name}: missing")
            continue
        if name.endswith(".json"):
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            differences += [f"{name}:{k}" for k in sorted(set(ja) | set(jb))
                            if k not in ignore and ja.get(k) != jb.get(k)]
        elif a.read_bytes() != b.read_bytes():
            differences.append(name)
    return differences


def kill_and_resume(args: list[str], workdir: Path, kill_point: str, *, files: list[str],
                    ignore: set[str], reference: Path, cwd: Path, timeout: float = 600,
                    max_resumes: int = 5) -> Outcome:
    out = workdir / kill_point.replace(":", "_")
    killed = _run(args, out, resume=False, kill_point=kill_point, cwd=cwd, timeout=timeout)
    resumes = 0
    while killed and resumes < max_resumes:
        resumes += 1
        can_resume = (out / "checkpoint.pt").exists()
        killed = _run(args, out, resume=can_resume, kill_point=None, cwd=cwd, timeout=timeout) \
            if can_resume else _run(args, out, resume=False, kill_point=None, cwd=cwd, timeout=timeout)
    leftovers = [p.name for p in out.rglob(".*.tmp")]
    differences = compare_json(reference, out, files, ignore) + [f"temp file left: {n}" for n in leftovers]
    return Outcome(kill_point, resumes > 0, resumes, not differences, differences)


def reference_run(args: list[str], workdir: Path, *, cwd: Path, timeout: float = 600) -> Path:
    out = workdir / "reference"
    _run(args, out, resume=False, kill_point=None, cwd=cwd, timeout=timeout)
    return out


