"""Kill-anywhere campaign: SIGKILL each command at many points (inside atomic writes and at
random times), resume until it finishes, and compare the outputs with an uninterrupted run.

Usage: .venv/bin/python benchmarks/faults.py [--commands train,dna,mgas,generate] [--random 3]
Prints a Markdown section (for docs/reliability.md).
"""
from __future__ import annotations

import argparse
import datetime
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from budgetnas.testing import kill_and_resume, reference_run  # noqa: E402

CAMPAIGNS = {
    "train": {"args": ["train", "examples/small_digits.json", "--epochs", "3", "--batch-size", "256"],
              "files": ["metrics.json", "model.safetensors", "arch.json"],
              "ignore": {"train_seconds", "peak_memory_mb"}, "writes": 9},
    "dna": {"args": ["search", "dna", "--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "2",
                     "--depths", "1,2", "--ops", "e3k3,e6k3,e3k5", "--final-epochs", "1",
                     "--recal-batches", "2", "--target-params", "40000", "--no-report"],
            "files": ["summary.json", "arch.json", "front.json"],
            "ignore": {"search_seconds", "peak_memory_mb"}, "writes": 30},
    "mgas": {"args": ["search", "mgas", "--channels", "4", "--layers", "3", "--batch-size", "256",
                      "--target-params", "6000", "--no-report"],
             "files": ["summary.json", "arch.json"],
             "ignore": {"search_seconds", "peak_memory_mb", "options"}, "writes": 20},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="train,dna")
    parser.add_argument("--write-points", type=int, default=4, help="kill points inside writes")
    parser.add_argument("--random", type=int, default=2, help="kill points at random times")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.commands.split(","):
            c = CAMPAIGNS[name]
            work = Path(tmp) / name
            start = time.perf_counter()
            ref = reference_run(c["args"], work, cwd=ROOT)
            full = time.perf_counter() - start
            points = sorted(rng.sample(range(1, c["writes"] + 1), args.write_points))
            kills = [f"write:{p}" for p in points] + \
                [f"time:{rng.uniform(0.3, 0.9) * full:.1f}" for _ in range(args.random)]
            for point in kills:
                o = kill_and_resume(c["args"], work, point, files=c["files"], ignore=c["ignore"],
                                    reference=ref, cwd=ROOT)
                rows.append((name, point, o))
                print(f"{name} {point}: killed={o.killed} resumes={o.resumes} equal={o.equal} "
                      f"{o.differences}", file=sys.stderr)
    print(f"## Kill anywhere, resume exactly\n\nMeasured {datetime.date.today()}, 2-core CPU. "
          f"Command: `.venv/bin/python benchmarks/faults.py --commands {args.commands}`.\n")
    print("| command | kill point | killed | resumes | outputs equal the uninterrupted run |")
    print("|---|---|---|---|---|")
    for name, point, o in rows:
        verdict = "yes" if o.equal else f"**no**: {', '.join(o.differences)}"
        print(f"| {name} | {point} | {'yes' if o.killed else 'no (finished first)'} | {o.resumes} | {verdict} |")


if __name__ == "__main__":
    main()
