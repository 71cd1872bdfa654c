"""Training on a shared machine: the OpenMP wait policy, idle and beside a busy neighbour.

    python benchmarks/shared_machine.py --rounds 3 [--threads 2] [--epochs 2]

Runs `budgetnas train examples/small_digits.json` with the OpenMP runtime's own default wait
policy (`OMP_WAIT_POLICY` set empty: threads spin a while before they sleep) and with the passive
policy (threads sleep at once; the CLI sets it when the machine is busy, cli.wait_policy), each on an idle machine and beside a neighbour:
a second training run with the same thread count started just before and kept running until the
measured run ends. Rounds interleave the four cases so slow periods of the host hit them all.
Prints a table (median and range of the measured run's training seconds) for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "examples" / "small_digits.json"
POLICIES = {"library default": "", "passive": "PASSIVE"}


def train_cmd(out: Path, threads: int, epochs: int) -> list[str]:
    return [sys.executable, "-m", "budgetnas", "train", str(ARCH), "--epochs", str(epochs), "--threads", str(threads),
            "--out", str(out)]


def measure(policy: str, busy: bool, threads: int, epochs: int, work: Path, index: int) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "PYTHONPATH": str(ROOT / "src")}
    neighbour = None
    if busy:  # the same work, a little longer, started first
        neighbour = subprocess.Popen(train_cmd(work / f"n{index}", threads, epochs * 3), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3.0)
    out = work / f"m{index}"
    try:
        subprocess.run(train_cmd(out, threads, epochs), env=env, check=True, capture_output=True, timeout=3600)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return json.loads((out / "metrics.json").read_text())["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shared-"))
    results: dict[tuple[str, str], list[float]] = {}
    index = 0
    for _ in range(args.rounds):
        for busy in (False, True):
            for name, policy in POLICIES.items():
                seconds = measure(policy, busy, args.threads, args.epochs, work, index)
                results.setdefault((name, "busy neighbour" if busy else "idle"), []).append(seconds)
                index += 1
                print(f"{name:>22} {'busy' if busy else 'idle':>5}: {seconds:.2f} s", flush=True)
    print(f"\n{args.threads} threads, {args.epochs} epochs of {ARCH.name} on digits, {args.rounds} rounds")
    print("| wait policy | machine | training s (median) | range |\n|---|---|---:|---|")
    for (name, state), values in results.items():
        print(f"| {name} | {state} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")


if __name__ == "__main__":
    main()
