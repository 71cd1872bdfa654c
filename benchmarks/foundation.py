"""Foundation figures: DARTS V2 size and MACs; retraining the small example on digits.

Usage: .venv/bin/python benchmarks/foundation.py  (prints a Markdown section)
"""
from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from budgetnas import load_arch, profile  # noqa: E402


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def main() -> None:
    v2 = profile(load_arch(ROOT / "examples/darts_v2.json"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "budgetnas", "train", "examples/small_digits.json",
                        "--dataset", "digits", "--epochs", "5", "--out", f"{tmp}/run"],
                       cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - start
        metrics = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
    print(f"## Foundation\n\nMeasured {datetime.date.today()} on {machine()}.\n"
          f"Command: `.venv/bin/python benchmarks/foundation.py`\n")
    print("| quantity | budgetnas | published |\n|---|---|---|")
    print(f"| DARTS V2, 20 cells, C=36, CIFAR-10 input: params | {v2['params_dense'] / 1e6:.3f}M | 3.3M |")
    print(f"| DARTS V2: MACs | {v2['macs'] / 1e6:.1f}M | ~528M |")
    print(f"\n`budgetnas train examples/small_digits.json --dataset digits --epochs 5`: test accuracy "
          f"{metrics['test_acc']:.4f}, {metrics['train_seconds']:.1f} s of training, "
          f"{wall:.1f} s wall clock including start-up; {metrics['params_nonzero']} params, "
          f"{metrics['macs']} MACs.")


if __name__ == "__main__":
    main()
