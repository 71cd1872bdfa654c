"""Soak: one long CPU search (MGAS, `tiny` preset, digits) with its memory sampled over time.

Runs `budgetnas search mgas` in a subprocess with 1 torch thread for the whole epochs that
cover --steps search steps (`--stop-after`, the search's own resumable stop), reads the process's resident
set size (VmRSS in /proc/PID/status) every --interval seconds, and follows the epochs it has
finished (lines of log.jsonl, rewritten atomically after each epoch). The verdict compares the
RSS at the end of the first epoch with the largest RSS after it.

Usage: .venv/bin/python benchmarks/soak.py [--batch-size 8] [--steps 2000]
       [--png docs/img/soak.png] [--samples FILE.json] [-- extra search options]
Prints a Markdown section (for docs/reliability.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GROWTH_LIMIT_MB = 32.0  # allowed RSS above the end of the first epoch (allocator noise)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def epochs_done(log: Path) -> int:
    try:
        return sum(1 for line in log.read_text().splitlines() if line.strip())
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000, help="search steps to run (whole epochs)")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--png", default=str(ROOT / "docs" / "img" / "soak.png"))
    parser.add_argument("--samples", default=None, help="also write the samples as JSON here")
    parser.add_argument("--from-samples", default=None, help="report on a samples file of an earlier run")
    parser.add_argument("extra", nargs="*", help="more `search mgas` options (after --)")
    args = parser.parse_args()

    from budgetnas.data import load_dataset

    steps_per_epoch = math.ceil(len(load_dataset("digits").train) / args.batch_size)
    stop_after = math.ceil(args.steps / steps_per_epoch)
    if args.from_samples:
        samples = [tuple(s) for s in json.loads(Path(args.from_samples).read_text())["samples"]]
        report(samples, steps_per_epoch, stop_after, samples[-1][0], args)
    else:
        samples, total = measure(steps_per_epoch, stop_after, args)
        if args.samples:
            Path(args.samples).write_text(json.dumps({"samples": samples, "steps_per_epoch": steps_per_epoch,
                                                      "batch_size": args.batch_size}))
        report(samples, steps_per_epoch, stop_after, total, args)


def measure(steps_per_epoch: int, stop_after: int, args) -> tuple[list, float]:
    """Run the search; returns the samples (seconds, RSS MB, epochs finished) and the duration."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "budgetnas", "search", "mgas", "--preset", "tiny",
               "--batch-size", str(args.batch_size), "--threads", "1", "--no-report",
               "--stop-after", str(stop_after),
               "--out", str(out), *args.extra]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        samples = []  # (seconds, rss MB, epochs finished)
        while proc.poll() is None:
            rss = rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - started, rss, epochs_done(out / "log.jsonl")))
            time.sleep(args.interval)
        err = proc.stderr.read()
        if proc.returncode != 0:
            raise SystemExit(f"search failed ({proc.returncode}): {err[-2000:]}")
    return samples, time.perf_counter() - started


def report(samples: list, steps_per_epoch: int, epochs: int, total: float, args) -> None:
    """Markdown on stdout and the PNG. The verdict covers the search itself: from the end of its
    first epoch to the end of its last one (after that the process only exits)."""
    if max(s[2] for s in samples) != epochs:
        print(f"warning: {max(s[2] for s in samples)} epochs seen, {epochs} expected", file=sys.stderr)
    steps = epochs * steps_per_epoch
    first_end = next(i for i, s in enumerate(samples) if s[2] >= 1)
    base = samples[first_end][1]
    later = [s for s in samples[first_end:] if s[2] < epochs]
    peak_later = max(s[1] for s in later)
    exiting = [s for s in samples if s[2] >= epochs]
    peak_in = {}  # epoch k (1-based) -> (elapsed at its last sample, largest RSS while it ran)
    for t, rss, e in samples:
        k = e + 1
        peak_in[k] = (t, max(rss, peak_in.get(k, (0, 0.0))[1]))
    peak_in.pop(epochs + 1, None)  # after the last epoch: final evaluation and writing
    # Growth trend over the second half of the run (MB per epoch, least squares).
    half = [(k, r) for k, (_, r) in peak_in.items() if k > max(1, epochs // 2)]
    slope = 0.0
    if len(half) >= 2:
        mk = sum(k for k, _ in half) / len(half)
        mr = sum(r for _, r in half) / len(half)
        var = sum((k - mk) ** 2 for k, _ in half)
        slope = sum((k - mk) * (r - mr) for k, r in half) / var if var else 0.0
    growth = peak_later - base
    ok = growth <= GROWTH_LIMIT_MB and steps >= args.steps

    _plot(samples, base, samples[first_end][0], args.png, epochs, steps)

    print(f"Measured {datetime.date.today()} on {platform.machine()}, 1 torch thread. Command: "
          f"`.venv/bin/python benchmarks/soak.py --batch-size {args.batch_size} --steps {args.steps}"
          f"{' -- ' + ' '.join(args.extra) if args.extra else ''}` "
          f"(`budgetnas search mgas --preset tiny --batch-size {args.batch_size} --stop-after {epochs}`, "
          f"digits, default target: half the supernet).\n")
    print(f"{epochs} epochs x {steps_per_epoch} steps = **{steps} search steps** in {total / 60:.1f} min; "
          f"{len(samples)} RSS samples, one every {args.interval:g} s.\n")
    print("| epoch | steps done at its end | elapsed at its end (s) | largest RSS during it (MB) |")
    print("|---|---|---|---|")
    shown = sorted({1, 2, 3, 5, epochs} | set(range(10, epochs, 5)))
    for k in shown:
        if k in peak_in:
            t, rss = peak_in[k]
            print(f"| {k} | {k * steps_per_epoch} | {t:.0f} | {rss:.1f} |")
    print(f"\nRSS at the end of the first epoch: **{base:.1f} MB**; largest RSS after it: "
          f"**{peak_later:.1f} MB** ({growth:+.1f} MB); trend over the second half "
          f"{slope:+.2f} MB per epoch.\n")
    if exiting:
        print(f"After the last epoch was written (all outputs complete) the process took "
              f"{exiting[-1][0] - exiting[0][0] + args.interval:.0f} s more to exit; its RSS then reached "
              f"{max(s[1] for s in exiting):.1f} MB (interpreter shutdown, not part of the search).\n")
    print(f"Verdict: {'no memory growth beyond the first epoch' if ok else '**memory grows** (see below)'} "
          f"(limit: {GROWTH_LIMIT_MB:g} MB above the end of the first epoch"
          f"{'' if steps >= args.steps else f'; only {steps} steps, fewer than {args.steps}'}).")


def _plot(samples, base: float, first_end_t: float, png: str, epochs: int, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    ax.plot(t, rss, lw=1.2, color="#1f77b4", label="RSS")
    ax.axvline(first_end_t, color="grey", ls="--", lw=0.8, label="end of epoch 1")
    ax.axhline(base, color="#d62728", ls=":", lw=0.8, label=f"RSS after epoch 1 ({base:.0f} MB)")
    changes = [s[0] for a, s in zip(samples, samples[1:]) if s[2] != a[2]]
    for x in changes:
        ax.axvline(x, color="grey", alpha=0.15, lw=0.5)
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(f"search mgas (tiny, digits): {epochs} epochs, {steps} steps, 1 thread", fontsize=9)
    ax.set_ylim(0, max(rss) * 1.1)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


if __name__ == "__main__":
    main()
