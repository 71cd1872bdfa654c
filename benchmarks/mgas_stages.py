"""Benchmark 1: peak memory and time per epoch of the 3-stage MGAS search against `--stages 1` on
the same supernet, data and target (each search in its own process); and, with --darts, the
whole 3-stage search against a first-order DARTS search (`budgetnas search darts`) of the same
supernet, data and number of epochs.

    .venv/bin/python benchmarks/mgas_stages.py [--doc docs/bench_mgas.md] [--darts]
                                               [-- extra search flags]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mgas_step import machine  # noqa: E402


def run(stages: int, out: Path, extra: list[str], threads: int) -> tuple[dict, list[dict]]:
    return _search(["mgas", "--stages", str(stages)], out, extra, threads)


def _search(method: list[str], out: Path, extra: list[str], threads: int) -> tuple[dict, list[dict]]:
    cmd = [sys.executable, "-m", "budgetnas", "search", *method, "--threads", str(threads),
           "--out", str(out), "--no-report", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_seconds"] = time.perf_counter() - start
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return summary, log


# MGAS-only flags that `search darts` does not take.
MGAS_ONLY = {"--warmup-epochs", "--max-stage-epochs", "--commit-every", "--final-warmup-epochs",
             "--max-final-epochs", "--n-thr", "--lambda-delta", "--stage-ratio", "--regrow-ratio"}


def darts_flags(extra: list[str], epochs: int) -> list[str]:
    flags, skip = [], False
    for flag in extra:
        if skip:
            skip = False
            continue
        if flag in MGAS_ONLY:
            skip = True
            continue
        flags.append(flag)
    return flags + ["--epochs", str(epochs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--darts", action="store_true",
                        help="also run a first-order DARTS search of as many epochs as the 3-stage one")
    parser.add_argument("extra", nargs="*", help="flags passed to both searches (after --)")
    args = parser.parse_args()
    extra = args.extra or ["--target-params", "40000"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stages in (3, 1):
            rows[stages] = run(stages, Path(tmp) / f"s{stages}", extra, args.threads)
        if args.darts:
            epochs = rows[3][0]["epochs"]
            darts = _search(["darts"], Path(tmp) / "darts", darts_flags(extra, epochs), args.threads)
    lines = ["## Multi-stage (3) against single-stage (1) search", "",
             f"- command: `.venv/bin/python benchmarks/mgas_stages.py --threads {args.threads} -- "
             f"{' '.join(extra)}` (runs `budgetnas search mgas --stages 3` and `--stages 1`)",
             f"- machine: {machine()} (shared; {args.threads} torch threads)",
             f"- date: {datetime.date.today().isoformat()}",
             "- peak memory = per-epoch peak RSS of the search process (VmHWM, reset each epoch); "
             "time per epoch = mean wall time of the epoch's training and pruning work", "",
             "| stages | epochs | mean s/epoch | peak RSS (MB), max over epochs | peak RSS by phase (MB) "
             "| s/epoch by phase | params (non-zero) | val acc |",
             "|---|---:|---:|---:|---|---|---:|---:|"]
    stats = {}
    for stages, (summary, log) in rows.items():
        phases: dict[str, list[dict]] = {}
        for row in log:
            phases.setdefault(row["stage"], []).append(row)
        peak = max(r["peak_memory_mb"] for r in log)
        mean_s = statistics.mean(r["seconds"] for r in log)
        stats[stages] = (peak, mean_s)
        by_peak = ", ".join(f"{k} {max(r['peak_memory_mb'] for r in v):.0f}" for k, v in phases.items())
        by_time = ", ".join(f"{k} {statistics.mean(r['seconds'] for r in v):.2f}" for k, v in phases.items())
        lines.append(f"| {stages} | {len(log)} | {mean_s:.2f} | {peak:.0f} | {by_peak} | {by_time} | "
                     f"{summary['params_nonzero']} | {summary['val_acc']:.3f} |")
    lines += ["", f"Ratio 3-stage / 1-stage: peak memory {stats[3][0] / stats[1][0]:.2f}, "
                  f"time per epoch {stats[3][1] / stats[1][1]:.2f}."]
    if args.darts:
        d_summary, d_log = darts
        lines += ["", "Whole search, wall clock of the command (data loading and export included):", "",
                  "| search | epochs | wall (s) | search (s) | peak RSS (MB) | vs DARTS (wall) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, summary in (("MGAS, 3 stages", rows[3][0]), ("MGAS, 1 stage", rows[1][0]),
                              ("first-order DARTS", d_summary)):
            lines.append(f"| {name} | {summary.get('epochs', len(d_log))} | {summary['wall_seconds']:.1f} | "
                         f"{summary['search_seconds']:.1f} | {summary['peak_memory_mb']:.0f} | "
                         f"{summary['wall_seconds'] / d_summary['wall_seconds']:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.doc:
        with open(args.doc, "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
