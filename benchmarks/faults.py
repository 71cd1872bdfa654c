"""Kill-anywhere campaign: SIGKILL each command at many points (inside atomic writes, inside
training and rating loops, and at random times), resume until it finishes, and compare the outputs
with an uninterrupted run (CPU, seeded, 1 torch thread).

Usage: .venv/bin/python benchmarks/faults.py [--commands train,dna,mgas,generate] [--random 2]
       [--write-points 4] [--loop-points 2] [--seed 0]
Prints a Markdown section (for docs/reliability.md); progress goes to stderr.

Kill points (see budgetnas.testing): the uninterrupted run is traced first (every atomic write and
every pass through a named loop point), and kill points are drawn from that trace, so each one is
known to be reached: "write:N" kills inside the N-th write (temporary file written and synced, not
yet renamed), "at:NAME:N" at the N-th pass through NAME, "time:S" after S seconds.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from budgetnas.testing import kill_and_resume, read_trace, reference_run  # noqa: E402

TABLE = "{table}"  # replaced by the path of the synthetic table written for `generate`

CAMPAIGNS = {
    "train": {"args": ["train", "examples/small_digits.json", "--epochs", "3", "--batch-size", "256"],
              "files": ["metrics.json", "model.safetensors", "arch.json"],
              "ignore": {"train_seconds", "peak_memory_mb"}},
    # teacher: 1 epoch (train-step 1..6), 3 blocks x 2 epochs of block training, every candidate
    # of every block rated (36 ratings), the front, then 1 retraining epoch for val_acc.
    "dna": {"args": ["search", "dna", "--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "2",
                     "--depths", "1,2", "--ops", "e3k3,e6k3,e3k5", "--final-epochs", "1",
                     "--recal-batches", "2", "--target-params", "40000", "--no-report"],
            "files": ["summary.json", "arch.json", "front.json"],
            "ignore": {"search_seconds", "peak_memory_mb"}},
    "mgas": {"args": ["search", "mgas", "--channels", "4", "--layers", "3", "--batch-size", "128",
                      "--subset", "500", "--target-params", "6000", "--no-report"],
             "files": ["summary.json", "arch.json", "arch.safetensors"],
             "ignore": {"search_seconds", "peak_memory_mb", "options"}},
    "generate": {"args": ["generate", "--table", TABLE, "--accuracy", "acc", "--cost", "latency_ms",
                          "--reveal", "200", "--budgets", "4,6", "--iterations", "120",
                          "--checkpoint-every", "40", "--samples-per-step", "8", "--predictor-epochs",
                          "10", "--evaluator-steps", "100", "--select-samples", "50", "--no-report"],
                 "files": ["picks.json", "summary.json", "generator.safetensors", "generator.json",
                           "true_front.json"],
                 "ignore": {"search_seconds", "peak_memory_mb", "generate_ms"}},
}


def write_table(path: Path) -> Path:
    """A complete synthetic benchmark table: 4 positions x 4 choices (256 rows); accuracy and
    latency add up per position with a little interaction, so the front is non-trivial."""
    rng = random.Random(7)
    gain = [sorted(rng.uniform(0, 4) for _ in range(4)) for _ in range(4)]
    price = [sorted(rng.uniform(0.2, 3.0) for _ in range(4)) for _ in range(4)]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "acc", "latency_ms"])
        for code in range(4 ** 4):
            choice = [(code >> (2 * i)) & 3 for i in range(4)]
            acc = 60 + sum(gain[i][c] for i, c in enumerate(choice)) + 0.3 * ((choice[0] * choice[1]) % 3)
            cost = sum(price[i][c] for i, c in enumerate(choice))
            w.writerow(["-".join(map(str, choice)), f"{acc:.4f}", f"{cost:.4f}"])
    return path


def choose_points(writes: list[str], points: dict[str, int], full: float, rng: random.Random,
                  n_writes: int, n_loop: int, n_time: int) -> list[tuple[str, str]]:
    """(kill point, what the process was doing there)."""
    chosen = [(f"write:{i}", f"writing {writes[i - 1]}") for i in _spread(len(writes), n_writes, rng)]
    for name, total in sorted(points.items()):
        chosen += [(f"at:{name}:{k}", f"{name} {k} of {total}") for k in _spread(total, n_loop, rng)]
    for _ in range(n_time):
        t = rng.uniform(0.2, 0.9) * full
        chosen.append((f"time:{t:.1f}", f"{t:.1f} s of a {full:.0f} s run"))
    return chosen


def _spread(total: int, n: int, rng: random.Random) -> list[int]:
    """n distinct numbers in 1..total, one drawn from each of n equal parts of the range."""
    n = min(n, total)
    edges = [round(total * i / n) for i in range(n + 1)]
    return [rng.randint(edges[i] + 1, edges[i + 1]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="train,dna,mgas,generate")
    parser.add_argument("--write-points", type=int, default=4, help="kill points inside writes")
    parser.add_argument("--loop-points", type=int, default=2, help="kill points per named loop point")
    parser.add_argument("--random", type=int, default=2, help="kill points at random times")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        table = write_table(Path(tmp) / "table.csv")
        for name in args.commands.split(","):
            c = CAMPAIGNS[name]
            cmd = [str(table) if a == TABLE else a for a in c["args"]]
            work = Path(tmp) / name
            t0 = time.perf_counter()
            ref = reference_run(cmd, work, cwd=ROOT, trace=work / "trace.txt")
            full = time.perf_counter() - t0
            writes, points = read_trace(work / "trace.txt", ref)
            print(f"{name}: reference {full:.1f} s, {len(writes)} writes, points {points}", file=sys.stderr)
            for point, doing in choose_points(writes, points, full, rng, args.write_points,
                                              args.loop_points, args.random):
                o = kill_and_resume(cmd, work, point, files=c["files"], ignore=c["ignore"],
                                    reference=ref, cwd=ROOT)
                rows.append((name, point, doing, o))
                print(f"  {point} ({doing}): killed={o.killed} restarts={o.restarts} equal={o.equal} "
                      f"{o.differences}", file=sys.stderr)
    minutes = (time.perf_counter() - started) / 60
    print(f"Measured {datetime.date.today()} on {platform.machine()} "
          f"({minutes:.0f} min). Command: `.venv/bin/python benchmarks/faults.py --commands {args.commands} "
          f"--write-points {args.write_points} --loop-points {args.loop_points} --random {args.random} "
          f"--seed {args.seed}`.\n")
    print("| command | kill point | what it was doing | killed | restarts | outputs equal the uninterrupted run |")
    print("|---|---|---|---|---|---|")
    for name, point, doing, o in rows:
        verdict = "yes" if o.equal else f"**no**: {', '.join(o.differences)}"
        restarts = ", ".join(o.restarts) or "-"
        print(f"| {name} | `{point}` | {doing} | {'yes' if o.killed else 'no (finished first)'} | "
              f"{restarts} | {verdict} |")
    ok = sum(o.equal for *_, o in rows)
    print(f"\n{ok} of {len(rows)} runs ended with outputs equal to the uninterrupted run.")


if __name__ == "__main__":
    main()
